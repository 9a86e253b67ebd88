(function () {
  // Tries the settings as typed, without saving: the server asks the node its block height.
  var button = document.getElementById("test-connection");
  var result = document.getElementById("connection-result");
  button.addEventListener("click", function () {
    var data = new FormData(button.form || document.getElementById("wallet_form"));
    data.append("object_id", button.dataset.object);
    result.textContent = "Asking the node…";
    result.style.color = "";
    fetch(button.dataset.url, {method: "POST", body: data, credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (j) {
        var errors = j.errors ? Object.keys(j.errors).map(function (k) { return k + ": " + j.errors[k].join(" "); }).join("; ") : "";
        result.textContent = j.message || errors || j.code;
        result.style.color = j.ok ? "#2e7d32" : "#ba2121";
      })
      .catch(function (e) { result.textContent = "The test failed: " + e; result.style.color = "#ba2121"; });
  });
})();
