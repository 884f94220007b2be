// Submit the language form when the language changes (no inline handler: CSP forbids them).
document.addEventListener("DOMContentLoaded", function () {
  const select = document.getElementById("lang-select");
  if (select) select.addEventListener("change", function () { select.form.submit(); });
});
