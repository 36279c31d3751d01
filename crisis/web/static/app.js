// Live countdowns: every element with data-due shows the time left (or overdue) and ticks each second.
(function () {
  function fmt(ms) {
    var s = Math.floor(Math.abs(ms) / 1000), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return (ms < 0 ? "-" : "") + (h ? h + "h" : "") + String(m).padStart(2, "0") + "m" + String(s % 60).padStart(2, "0") + "s";
  }
  function tick() {
    var now = Date.now() + (window.crisisSkew || 0);
    document.querySelectorAll("[data-due]").forEach(function (el) {
      var left = Date.parse(el.getAttribute("data-due")) - now;
      el.textContent = fmt(left);
      el.classList.toggle("over", left < 0);
    });
  }
  setInterval(tick, 1000);
  document.addEventListener("DOMContentLoaded", tick);
  document.addEventListener("htmx:afterSwap", tick);
})();
