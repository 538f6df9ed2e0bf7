/* Copy buttons of the share links (job page) and of the podcast feed's address (feed page).
 * Without JavaScript the addresses are still there to select and copy by hand. */
(function () {
  "use strict";

  function say(id, text) {
    const status = document.querySelector(`[data-copy-status="${id}"]`);
    if (status) status.textContent = text;
  }

  async function copy(button) {
    const id = button.getAttribute("data-copy");
    const field = document.getElementById(id);
    if (!field) return;
    try {
      await navigator.clipboard.writeText(field.value);
      say(id, "Copied to the clipboard.");
    } catch (error) {
      // No clipboard access (an insecure origin, a refused permission): select it for Ctrl+C instead.
      field.focus();
      field.select();
      say(id, "Selected: press Ctrl+C (or ⌘C) to copy it.");
    }
  }

  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", () => copy(button));
  }
  for (const field of document.querySelectorAll(".copy-source")) {
    field.addEventListener("focus", () => field.select());
  }
})();
