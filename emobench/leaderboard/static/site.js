/* emobench leaderboard: sortable tables and the sample filter. No dependencies, no network. */
"use strict";
(function () {
  function cellValue(row, index) {
    var cell = row.cells[index];
    if (!cell) return "";
    return cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
  }

  function sortTable(table, index, header) {
    var numeric = header.getAttribute("data-type") === "num";
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, index), y = cellValue(b, index);
      if (x === "" && y !== "") return 1;       /* missing values always last */
      if (y === "" && x !== "") return -1;
      var cmp = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
      return ascending ? cmp : -cmp;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }

  function makeSortable(table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      th.tabIndex = 0;
      th.addEventListener("click", function () { sortTable(table, index, th); });
      th.addEventListener("keydown", function (ev) { if (ev.key === "Enter") sortTable(table, index, th); });
    });
  }

  function sampleFilter() {
    var table = document.getElementById("samples");
    if (!table) return;
    var outcome = document.getElementById("outcome-filter");
    var text = document.getElementById("text-filter");
    var count = document.getElementById("shown-count");
    function apply() {
      var want = outcome.value, needle = text.value.toLowerCase(), shown = 0;
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        var ok = (!want || row.getAttribute("data-outcome") === want) &&
                 (!needle || row.textContent.toLowerCase().indexOf(needle) !== -1);
        row.hidden = !ok;
        if (ok) shown += 1;
      });
      count.textContent = shown + " shown";
    }
    outcome.addEventListener("change", apply);
    text.addEventListener("input", apply);
    apply();
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), makeSortable);
    sampleFilter();
    document.documentElement.setAttribute("data-ready", "1");
  });
})();
