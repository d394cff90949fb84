/* Taking an assessment: answers are saved as they are typed (debounced POST of JSON to the
   form's data-save-url, the page session in the X-Page-Token header), and a copy of what was
   typed stays in this browser until the server has it, so an ended session or a lost
   connection loses nothing: the next launch resumes the attempt and sends what is left.
   Without JavaScript the page still works: "Save and continue later" and "Submit" post the form. */
(function () {
  "use strict";

  var DELAY = 800;

  function answersOf(form) {
    var out = {};
    form.querySelectorAll("fieldset[data-key]").forEach(function (box) {
      var key = box.getAttribute("data-key");
      var kind = box.getAttribute("data-kind");
      if (kind === "choice") {
        var picked = box.querySelector("input[type=radio]:checked");
        out[key] = picked ? picked.value : "";
      } else if (kind === "multi") {
        out[key] = Array.prototype.map.call(
          box.querySelectorAll("input[type=checkbox]:checked"), function (i) { return i.value; });
      } else {
        var field = box.querySelector("input[type=text], textarea");
        out[key] = field ? field.value : "";
      }
    });
    return out;
  }

  function fill(form, answers) {
    form.querySelectorAll("fieldset[data-key]").forEach(function (box) {
      var key = box.getAttribute("data-key");
      if (!(key in answers)) return;
      var value = answers[key];
      var kind = box.getAttribute("data-kind");
      if (kind === "choice" || kind === "multi") {
        var wanted = [].concat(value).map(String);
        box.querySelectorAll("input[type=radio], input[type=checkbox]").forEach(function (i) {
          i.checked = wanted.indexOf(i.value) !== -1;
        });
      } else {
        var field = box.querySelector("input[type=text], textarea");
        if (field) field.value = value;
      }
    });
  }

  function store(name, value) {
    try {
      if (value === null) window.localStorage.removeItem(name);
      else window.localStorage.setItem(name, JSON.stringify(value));
    } catch (e) { /* storage may be blocked inside a frame: the server copy still counts */ }
  }

  function stored(name) {
    try { return JSON.parse(window.localStorage.getItem(name) || "null"); } catch (e) { return null; }
  }

  function start(form) {
    var url = form.getAttribute("data-save-url");
    var tokenField = form.querySelector("input[name=t]");
    var status = document.getElementById("save-status");
    var draftKey = "assessment-draft-" + form.getAttribute("data-attempt");
    var timer = null;
    var sending = false;
    var again = false;

    function say(text) { if (status) status.textContent = text; }

    function save() {
      timer = null;
      if (sending) { again = true; return; }
      sending = true;
      var answers = answersOf(form);
      store(draftKey, answers);
      say("Saving…");
      fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: {"Content-Type": "application/json", "Accept": "application/json",
                  "X-Page-Token": tokenField ? tokenField.value : ""},
        body: JSON.stringify({answers: answers})
      }).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          if (response.ok) {
            store(draftKey, null);
            var at = (body.saved_at || "").slice(11, 16);
            say("Answers saved" + (at ? " at " + at + " UTC." : "."));
          } else if (response.status === 401) {
            say("Your session has ended. What you typed is kept in this browser: open the " +
                "assessment again from your course to continue.");
          } else {
            say("Not saved: " + (body.reason || "the tool refused it") + ".");
          }
        });
      }).catch(function () {
        say("Not saved (no connection). What you typed is kept in this browser and sent when you continue.");
      }).then(function () {
        sending = false;
        if (again) { again = false; save(); }
      });
    }

    function later() {
      if (timer) clearTimeout(timer);
      store(draftKey, answersOf(form));
      timer = setTimeout(save, DELAY);
    }

    form.addEventListener("input", later);
    form.addEventListener("change", later);
    form.addEventListener("submit", function () {
      if (timer) clearTimeout(timer);
      store(draftKey, null);
    });

    // Typed in an earlier session but never reached the server: put it back and send it.
    var draft = stored(draftKey);
    if (draft && typeof draft === "object") {
      fill(form, draft);
      say("Restored answers typed earlier in this browser; saving them now.");
      save();
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("form.take[data-save-url]");
    if (form) start(form);
  });
})();
