/* Focus the field a page marks with `autofocus` (a form's first field in error, the picker's
   first choice after an error). Browsers ignore the attribute in a cross-origin frame, which is
   where the tool lives inside Canvas, so keyboard and screen reader users would otherwise
   start again from the top of the page after every refused form. */
(function () {
  "use strict";
  var field = document.querySelector("[autofocus]");
  if (field && document.activeElement !== field) {
    field.focus();
  }
})();
