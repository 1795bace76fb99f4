"use strict";
(function () {
  const data = JSON.parse(document.getElementById("trace-data").textContent);
  const box = document.getElementById("diagram-box");
  const heading = document.getElementById("route-title");
  const detail = document.getElementById("detail");
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
  const pidFilter = document.getElementById("pid-filter");
  const shown = document.getElementById("shown");
  let route = data.route; // the events of the route drawn; an arrow's data-ev indexes them

  // --- details, as tables ---------------------------------------------------------------
  const LONG = 160; // characters of a string shown before "…"
  const FIRST = ["msgid", "src", "dst", "op", "cause", "pid", "tid", "syscall", "step", "flag", "node", "seq", "ts"];
  const LAST = ["result", "errno", "message", "dur_us"];

  function node(tag, cls, text) {
    const el = document.createElement(tag);
    if (cls) el.className = cls;
    if (text !== undefined) el.textContent = text;
    return el;
  }
  function scalar(v) {
    if (v === null || v === undefined) return "null";
    if (typeof v === "string") {
      const quoted = JSON.stringify(v.length > LONG ? v.slice(0, LONG) : v);
      return v.length > LONG ? quoted + "… (" + v.length + " characters)" : quoted;
    }
    return String(v);
  }
  function isScalar(v) { return v === null || typeof v !== "object"; }
  // A value on one line, as strace writes a struct: {files=5}, [3, 4].
  function compact(v) {
    if (isScalar(v)) return scalar(v);
    if (Array.isArray(v)) return "[" + v.map(compact).join(", ") + "]";
    return "{" + Object.entries(v).map(function (kv) { return kv[0] + "=" + compact(kv[1]); }).join(", ") + "}";
  }
  const POINTERS = ["addr", "parent_tid", "child_tid", "tls", "page"];
  // An argument's row: numbers that are addresses or bit masks shown in hex (too).
  function argument(name, v) {
    const row = ["arg " + name, v];
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) return row;
    if (POINTERS.includes(name)) row.push("0x" + v.toString(16));
    else if (/flags|prot|mask|options/.test(name)) row.push(v + " (0x" + v.toString(16) + ")");
    return row;
  }
  // A value as a table cell's content: scalars as text, lists of scalars on one line, the rest nested tables.
  function valueNode(v) {
    if (isScalar(v)) {
      const span = node("span", "value", scalar(v));
      if (typeof v === "string" && v.length > LONG) span.title = v;
      return span;
    }
    if (Array.isArray(v) && v.every(isScalar)) return node("span", "value", "[" + v.map(scalar).join(", ") + "]");
    const pairs = Array.isArray(v) ? v.map(function (x, k) { return [String(k), x]; }) : Object.entries(v);
    return table(null, pairs);
  }
  // A two-column table: a row per [name, value] (or [name, value, the text to show for it]).
  function table(caption, pairs) {
    const t = node("table", "kv");
    if (caption) t.appendChild(node("caption", null, caption));
    const body = t.appendChild(document.createElement("tbody"));
    pairs.forEach(function (pair) {
      const tr = body.appendChild(document.createElement("tr"));
      tr.appendChild(node("th", null, pair[0]));
      const cell = tr.appendChild(document.createElement("td"));
      cell.appendChild(pair.length > 2 ? node("span", "value", pair[2]) : valueNode(pair[1]));
    });
    return t;
  }
  // An event's fields in reading order: who and what, its arguments one a row, then what came back.
  function fields(e) {
    const keys = Object.keys(e).filter(function (k) { return k !== "type" && k !== "args"; });
    const middle = keys.filter(function (k) { return !FIRST.includes(k) && !LAST.includes(k); }).sort();
    // Names (src, op, step...) as the route view writes them; values (args, results) as values.
    const pairs = FIRST.concat(middle).filter(function (k) { return k in e; }).map(function (k) {
      return FIRST.includes(k) && typeof e[k] === "string" ? [k, e[k], e[k]] : [k, e[k]];
    });
    if (e.args && typeof e.args === "object" && !Array.isArray(e.args)) {
      Object.entries(e.args).forEach(function (a) { pairs.push(argument(a[0], a[1])); });
    } else if ("args" in e) {
      pairs.push(["args", e.args]);
    }
    LAST.forEach(function (k) { if (k in e) pairs.push([k, e[k]]); });
    return pairs;
  }
  const CAPTIONS = { syscall_enter: "syscall entry", syscall_exit: "syscall return", request: "request",
    reply: "reply", notify: "notification", fault: "page fault" };
  function caption(e) {
    const ends = e.type === "fault" ? e.src : e.src + " → " + e.dst;
    return (CAPTIONS[e.type] || e.type) + ": " + ends;
  }
  function answer(reply) {
    if (!reply) return "(no reply)";
    if ("errno" in reply) return reply.errno + (reply.message ? ": " + reply.message : "");
    return "result" in reply ? compact(reply.result) : "ok";
  }
  // The messages of a route, one row each: the request and how it was answered.
  function messageTable(events) {
    const replies = {};
    events.forEach(function (e) { if (e.type === "reply") replies[e.msgid] = e; });
    const t = node("table", "messages");
    t.appendChild(node("caption", null, "messages"));
    const head = t.appendChild(document.createElement("thead")).appendChild(document.createElement("tr"));
    ["#", "to", "op", "answer"].forEach(function (h) { head.appendChild(node("th", null, h)); });
    const body = t.appendChild(document.createElement("tbody"));
    events.forEach(function (e) {
      if (e.type !== "request" && e.type !== "notify" && e.type !== "fault") return;
      const tr = body.appendChild(document.createElement("tr"));
      const why = [e.flag, e.step === e.op ? null : e.step].filter(Boolean).join(", ");
      const to = e.src === "kernel" ? e.dst : e.src + (e.type === "notify" ? " ~> " : " → ") + e.dst;
      const cells = e.type === "fault"
        ? ["", e.src, "page fault (" + e.access + ")", e.kind + (e.code ? " " + e.code : " frame " + e.frame)]
        : [String(e.msgid), to, e.op + (why ? " [" + why + "]" : ""),
          e.type === "notify" ? "(notification)" : answer(replies[e.msgid])];
      cells.forEach(function (c) { tr.appendChild(node("td", null, c)); });
      if (e.type === "fault") tr.classList.add("fault");
      if (replies[e.msgid] && "errno" in replies[e.msgid]) tr.classList.add("failed");
    });
    if (!body.children.length) body.appendChild(document.createElement("tr")).appendChild(node("td", "hint", "this syscall sent no message")).colSpan = 4;
    return t;
  }
  function show(el, title, parts) {
    document.querySelectorAll(".selected").forEach(function (x) { x.classList.remove("selected"); });
    if (el) el.classList.add("selected");
    detail.replaceChildren(node("p", "detail-title", title));
    parts.forEach(function (p) { detail.appendChild(p); });
  }

  // --- what a click shows -----------------------------------------------------------------
  function showMessage(el) {
    const event = route[Number(el.dataset.ev)];
    const pair = event.type === "fault" ? [event] : route.filter(function (e) {
      return e.msgid === event.msgid && e.type !== "fault";
    });
    show(el, el.querySelector("title").textContent, pair.map(function (e) { return table(caption(e), fields(e)); }));
  }
  function bindArrows() {
    box.querySelectorAll("#diagram .msg").forEach(function (el) {
      el.addEventListener("click", function () { showMessage(el); });
      el.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); showMessage(el); }
      });
    });
  }
  function drawRoute(msgid) {
    const call = data.calls[msgid];
    box.innerHTML = call.svg;
    heading.textContent = "Route of " + call.title;
    route = call.events.map(function (k) { return data.events[k]; });
    bindArrows();
  }
  function showCall(row) {
    const msgid = row.dataset.msgid;
    drawRoute(msgid);
    const events = route;
    const enter = events[0];
    const exits = events.filter(function (e) { return e.type === "syscall_exit" && e.msgid === enter.msgid; });
    const pairs = [["pid", Number(row.querySelector("[data-pid]").dataset.pid)],
      ["tid", Number(row.querySelector("[data-tid]").dataset.tid)], ["msgid", enter.msgid], ["seq", enter.seq]];
    if (enter.args && typeof enter.args === "object") {
      Object.entries(enter.args).forEach(function (a) { pairs.push(argument(a[0], a[1])); });
    }
    const parts = [table("syscall " + enter.op, pairs)];
    exits.forEach(function (e) {
      const back = "errno" in e ? [["errno", e.errno], ["message", e.message]] : [["result", e.result]];
      if ("child" in e) back.push(["child (global pid)", e.child]);
      if ("dur_us" in e) back.push(["dur_us", e.dur_us]);
      parts.push(table("return", back));
    });
    if (!exits.length) parts.push(node("p", "hint", "It did not return (" + row.querySelector("td.result").textContent + ")."));
    parts.push(messageTable(events));
    show(row, row.querySelector("td.call").textContent + " = " + row.querySelector("td.result").textContent, parts);
    const top = heading.getBoundingClientRect().top;
    if (top < 0 || top > window.innerHeight) heading.scrollIntoView();
  }
  function showFault(row) {
    const e = data.events[Number(row.dataset.fault)];
    show(row, row.querySelector("td.fault").textContent, [table(caption(e), fields(e))]);
  }

  // --- filters ----------------------------------------------------------------------------
  function taskMatches(row) {
    const v = pidFilter.value;
    if (!v) return true;
    const cell = v[0] === "p" ? row.querySelector("[data-pid]").dataset.pid : row.querySelector("[data-tid]").dataset.tid;
    return cell === v.slice(1);
  }
  function applyFilter() {
    const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    let n = 0;
    groups.forEach(function (group) {
      const text = group.map(function (row) { return row.textContent; }).join(" ").toLowerCase();
      const hide = !taskMatches(group[0]) || !words.every(function (w) { return text.includes(w); });
      group.forEach(function (row) { row.hidden = hide; });
      if (!hide) n += 1;
    });
    shown.textContent = n + " of " + rows.length + " syscalls";
  }
  function choose(value) {
    const known = Array.from(pidFilter.options).some(function (o) { return o.value === value; });
    if (!known) return false;
    pidFilter.value = value;
    applyFilter();
    return true;
  }
  // The pstree's processes become buttons that choose them in the task filter.
  function treeButtons() {
    const pre = document.getElementById("pstree");
    const text = pre.textContent;
    const label = /(\{[^{}\n]*\}|[^\s─┬├└│┼{}()]+)\((\d+)\)/g;
    const out = document.createDocumentFragment();
    let at = 0;
    for (let m = label.exec(text); m; m = label.exec(text)) {
      const value = (m[1][0] === "{" ? "t" : "p") + m[2];
      if (!Array.from(pidFilter.options).some(function (o) { return o.value === value; })) continue;
      out.appendChild(document.createTextNode(text.slice(at, m.index)));
      const button = node("button", "task", m[0]);
      button.type = "button";
      button.dataset.task = value;
      button.addEventListener("click", function () { choose(value); });
      out.appendChild(button);
      at = m.index + m[0].length;
    }
    out.appendChild(document.createTextNode(text.slice(at)));
    pre.replaceChildren(out);
  }

  bindArrows();
  // A click anywhere on a row, or Enter or Space on its button (a click too), shows it.
  rows.forEach(function (row) { row.addEventListener("click", function () { showCall(row); }); });
  faultRows.forEach(function (row) { row.addEventListener("click", function () { showFault(row); }); });
  filter.addEventListener("input", applyFilter);
  pidFilter.addEventListener("change", applyFilter);
  treeButtons();

  // A link can say what to show: page.html#filter=fork&pid=2&call=12&msg=3
  // (pid: a process, tNN a thread; call: a syscall's msgid, whose route is drawn; msg: an arrow's index).
  const params = new URLSearchParams(window.location.hash.slice(1));
  if (params.has("filter")) filter.value = params.get("filter");
  if (params.has("pid")) {
    const p = params.get("pid");
    choose(/^\d+$/.test(p) ? "p" + p : p);
  }
  applyFilter();
  const row = rows.find(function (r) { return r.dataset.msgid === params.get("call"); });
  if (row) showCall(row);
  const chosen = box.querySelectorAll("#diagram .msg")[Number(params.get("msg"))];
  if (params.has("msg") && chosen) showMessage(chosen);
  document.body.dataset.ready = "1";
})();
