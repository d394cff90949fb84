/* LTI Platform Storage for the login and launch pages (1EdTech LTI Client Side postMessages and
   postMessage Storage; Canvas: facts sheet section 10).

   The page's form carries data-lti-storage="put" (login: store the proof, then go on to the
   platform's auth endpoint) or "get" (launch: read the proof back, then post the launch again
   from this page with the value read). Messages go to the frame the platform named
   (lti_storage_target) with the auth endpoint's origin as target origin; when that frame does
   not answer in time, to window.parent with target origin "*", as Canvas documents for launches
   from its rich content editor. An answer counts only when it comes from the auth endpoint's
   origin and carries our message_id: a page that frames the tool cannot answer for the
   platform. Whatever happens, the form is submitted: the server decides. */
(function () {
  "use strict";
  var WAIT_MS = 2000;
  var form = document.getElementById("lti-storage-form");
  if (!form) {
    return;
  }
  var mode = form.getAttribute("data-lti-storage");
  var target = form.getAttribute("data-lti-storage-target");
  var origin = form.getAttribute("data-lti-storage-origin");
  var key = form.getAttribute("data-lti-storage-key");
  var status = document.getElementById("lti-storage-status");

  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }

  function messageId() {
    if (window.crypto && window.crypto.randomUUID) {
      return window.crypto.randomUUID();
    }
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return (b + 256).toString(16).slice(1);
    }).join("");
  }

  /* Where to send, in order: the named frame (or the parent for "_parent"), then the parent
     with "*". Nothing when the page is not framed: there is no platform window to ask. */
  function recipients() {
    var list = [];
    if (window.parent === window) {
      return list;
    }
    if (target === "_parent") {
      list.push({ win: window.parent, targetOrigin: origin });
      return list;
    }
    var frame = null;
    try {
      frame = window.parent.frames[target] || null;
    } catch (e) {
      frame = null;
    }
    if (frame) {
      list.push({ win: frame, targetOrigin: origin });
    }
    list.push({ win: window.parent, targetOrigin: "*" });
    return list;
  }

  /* Send one message and wait for its answer; done(answer or null). */
  function ask(recipient, message, done) {
    var id = messageId();
    var finished = false;
    var timer = null;
    function finish(answer) {
      if (finished) {
        return;
      }
      finished = true;
      window.clearTimeout(timer);
      window.removeEventListener("message", listen);
      done(answer);
    }
    function listen(event) {
      var data = event.data;
      if (event.origin !== origin || !data || typeof data !== "object") {
        return;
      }
      if (data.subject !== message.subject + ".response" || data.message_id !== id) {
        return;
      }
      finish(data.error ? null : data);
    }
    window.addEventListener("message", listen);
    timer = window.setTimeout(function () { finish(null); }, WAIT_MS);
    var sent = { message_id: id };
    Object.keys(message).forEach(function (name) { sent[name] = message[name]; });
    try {
      recipient.win.postMessage(sent, recipient.targetOrigin);
    } catch (e) {
      finish(null);
    }
  }

  /* Ask each recipient in turn until one answers; done(answer or null). */
  function call(message, done) {
    var list = recipients();
    (function next(i) {
      if (i >= list.length) {
        done(null);
        return;
      }
      ask(list[i], message, function (answer) {
        if (answer) {
          done(answer);
        } else {
          next(i + 1);
        }
      });
    })(0);
  }

  if (mode === "put") {
    call({ subject: "lti.put_data", key: key, value: form.getAttribute("data-lti-storage-value") },
      function () {
        say("Going on to your course's sign-in…");
        form.submit();
      });
  } else if (mode === "get") {
    call({ subject: "lti.get_data", key: key }, function (answer) {
      var value = answer && typeof answer.value === "string" ? answer.value : "";
      form.elements.lti_storage_value.value = value;
      if (value) {
        // The value has served its purpose: free the platform's space (a null value clears it).
        call({ subject: "lti.put_data", key: key, value: null }, function () {});
      }
      say("Opening the tool…");
      form.submit();
    });
  }
})();
