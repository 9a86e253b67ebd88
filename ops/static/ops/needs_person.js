(function () {
  // The counts again every few seconds, as a small HTML fragment: no reload, no framework.
  var strip = document.getElementById("needs-person");
  function refresh() {
    fetch(strip.dataset.refresh, {credentials: "same-origin", headers: {"X-Requested-With": "fetch"}})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) strip.innerHTML = html; })
      .catch(function () {});
  }
  setInterval(refresh, Number(strip.dataset.every));
})();
