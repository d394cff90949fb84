/* Posts the deep linking answer to the platform as soon as the page loads (Deep Linking 2.0
   §4.5: the tool answers by an auto-submitted form). Without JavaScript the visible Continue
   button does the same. */
(function () {
  "use strict";
  var form = document.querySelector("form[data-autopost]");
  if (form) {
    form.submit();
  }
})();
