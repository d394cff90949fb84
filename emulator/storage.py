"""Canvas's platform storage frame, ``/post_message_forwarding`` (facts sheet section 10).

Canvas puts a hidden iframe named ``post_message_forwarding`` on every page, served from the
auth endpoint's origin, so tools can address LTI Platform Storage messages (``lti.put_data``,
``lti.get_data``, ``lti.capabilities``) to a known origin. This frame answers them itself: values
are kept per sender origin (one tool never reads another's), at most 500 keys and 4,096
characters per tool as Canvas allows, and answers carry the request's ``message_id``, with
``error: {code, message}`` on failure (``bad_request``, ``storage_exhaustion``,
``unsupported_subject``). Canvas keeps the values in its page's localStorage; this frame keeps
them in memory, which lives as long as the course page that holds it (login and launch happen
in the tool's frame beside it), and works in a browser that blocks third-party storage.
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Platform storage</title>
<script src="post_message_forwarding.js"></script></head><body></body></html>
"""

SCRIPT = r"""(function () {
  "use strict";
  var KEY_LIMIT = 500, CHAR_LIMIT = 4096;
  var stores = {};  // sender origin -> {values: {key: value}, chars: n}

  function storeFor(origin) {
    if (!stores[origin]) { stores[origin] = { values: {}, count: 0, chars: 0 }; }
    return stores[origin];
  }
  function answer(event, data, extra) {
    var message = { subject: data.subject + ".response", message_id: data.message_id };
    Object.keys(extra).forEach(function (k) { message[k] = extra[k]; });
    event.source.postMessage(message, event.origin);
  }
  function fail(event, data, code, text) {
    answer(event, data, { error: { code: code, message: text } });
  }
  function put(store, key, value) {
    var old = Object.prototype.hasOwnProperty.call(store.values, key) ? store.values[key] : null;
    if (old !== null) { store.count -= 1; store.chars -= key.length + old.length; delete store.values[key]; }
    if (value === null || value === undefined || value === "") { return null; }
    if (store.count >= KEY_LIMIT) { return "Reached key limit for tool"; }
    if (store.chars + key.length + value.length > CHAR_LIMIT) { return "Reached byte limit for tool"; }
    store.values[key] = value; store.count += 1; store.chars += key.length + value.length;
    return null;
  }

  window.addEventListener("message", function (event) {
    var data = event.data;
    if (!data || typeof data !== "object" || typeof data.subject !== "string" || !event.source) { return; }
    var subject = data.subject.replace(/^org\.imsglobal\./, "");
    if (subject.slice(-9) === ".response" || subject.indexOf("lti.") !== 0) { return; }
    if (!data.message_id) { fail(event, data, "bad_request", "Missing required 'message_id' field"); return; }
    var store = storeFor(event.origin);
    if (subject === "lti.capabilities") {
      answer(event, data, { supported_messages: [
        { subject: "lti.capabilities" },
        { subject: "lti.put_data", frame: "post_message_forwarding" },
        { subject: "lti.get_data", frame: "post_message_forwarding" }] });
    } else if (subject === "lti.put_data") {
      if (typeof data.key !== "string" || !data.key) { fail(event, data, "bad_request", "Missing required 'key' field"); return; }
      if (data.value !== null && data.value !== undefined && typeof data.value !== "string") {
        fail(event, data, "bad_request", "'value' must be a string or null"); return;
      }
      var problem = put(store, data.key, data.value);
      if (problem) { fail(event, data, "storage_exhaustion", problem); return; }
      answer(event, data, data.value ? { key: data.key, value: data.value } : { key: data.key });
    } else if (subject === "lti.get_data") {
      if (typeof data.key !== "string" || !data.key) { fail(event, data, "bad_request", "Missing required 'key' field"); return; }
      var has = Object.prototype.hasOwnProperty.call(store.values, data.key);
      answer(event, data, { key: data.key, value: has ? store.values[data.key] : null });
    } else {
      fail(event, data, "unsupported_subject", "Unsupported subject " + subject);
    }
  });
})();
"""


def register(app):
    @app.get("/post_message_forwarding")
    def post_message_forwarding():
        return PAGE, 200, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}

    @app.get("/post_message_forwarding.js")
    def post_message_forwarding_js():
        return SCRIPT, 200, {"Content-Type": "text/javascript; charset=utf-8"}
