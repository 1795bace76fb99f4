"use strict";
(function () {
  const data = JSON.parse(document.getElementById("trace-data").textContent);
  const detail = document.getElementById("detail");
  const arrows = Array.from(document.querySelectorAll("#diagram .msg"));
  const rows = Array.from(document.querySelectorAll("#syscalls tbody tr.call"));
  const faultRows = Array.from(document.querySelectorAll("#syscalls tbody tr.fault"));
  // A syscall's row and the rows of the page faults it took (they follow it): filtered as one.
  const groups = rows.map(function (row) {
    const group = [row];
    for (let next = row.nextElementSibling; next && next.classList.contains("fault"); next = next.nextElementSibling) {
      group.push(next);
    }
    return group;
  });
  const filter = document.getElementById("filter");
  const shown = document.getElementById("shown");

  function select(el, title, events) {
    document.querySelectorAll(".selected").forEach(function (x) { x.classList.remove("selected"); });
    el.classList.add("selected");
    detail.textContent = title + "\n\n" + events.map(function (e) { return JSON.stringify(e, null, 2); }).join("\n");
  }
  function showMessage(el) {
    const event = data.route[Number(el.dataset.ev)];
    const pair = event.type === "fault" ? [event] : data.route.filter(function (e) { return e.msgid === event.msgid; });
    select(el, el.querySelector("title").textContent, pair);
  }
  function showCall(row) {
    select(row, row.querySelector(".call").textContent, data.calls[row.dataset.msgid] || []);
  }
  function showFault(row) {
    select(row, row.querySelector("td.fault").textContent, [data.faults[Number(row.dataset.fault)]]);
  }
  function applyFilter() {
    const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    let n = 0;
    groups.forEach(function (group) {
      const text = group.map(function (row) { return row.textContent; }).join(" ").toLowerCase();
      const hide = !words.every(function (w) { return text.includes(w); });
      group.forEach(function (row) { row.hidden = hide; });
      if (!hide) n += 1;
    });
    shown.textContent = n + " of " + rows.length + " syscalls";
  }
  arrows.forEach(function (el) {
    el.addEventListener("click", function () { showMessage(el); });
    el.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); showMessage(el); }
    });
  });
  rows.forEach(function (row) { row.addEventListener("click", function () { showCall(row); }); });
  faultRows.forEach(function (row) { row.addEventListener("click", function () { showFault(row); }); });
  filter.addEventListener("input", applyFilter);

  // A link can say what to show: page.html#filter=fork&msg=3 (msg: the arrow's index).
  const params = new URLSearchParams(window.location.hash.slice(1));
  if (params.has("filter")) filter.value = params.get("filter");
  applyFilter();
  const chosen = arrows[Number(params.get("msg"))];
  if (params.has("msg") && chosen) showMessage(chosen);
  document.body.dataset.ready = "1";
})();
