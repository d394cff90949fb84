// The login initiation form posts itself on load, as Canvas's launch page does (a <noscript>
// button covers browsers without JavaScript).
document.addEventListener("DOMContentLoaded", function () {
  var form = document.querySelector("form.autosubmit");
  if (form) { form.submit(); }
});
