/* The end of a dynamic registration (LTI Dynamic Registration 1.0, step 4): tell the platform
   window that opened or framed this page that the tool is done, so it closes the registration
   and goes on with its own steps. The button sends the message again for a person who is
   still looking at the page. */
(function () {
  "use strict";
  var platform = window.opener || (window.parent !== window ? window.parent : null);

  function close() {
    if (platform) {
      platform.postMessage({ subject: "org.imsglobal.lti.close" }, "*");
    }
  }

  close();
  var button = document.querySelector("[data-lti-close]");
  if (button) {
    if (!platform) {
      button.classList.add("hidden");  // opened on its own: no platform window to return to
    }
    button.addEventListener("click", close);
  }
})();
