"use strict";
// The state graph page (ukernel/explore/graph.py draws the SVG; this shows a clicked node's detail).
(function () {
  const data = JSON.parse(document.getElementById("graph-data").textContent);
  const byId = {};
  data.nodes.forEach(function (n) { byId[n.id] = n; });
  const detail = document.getElementById("detail");
  const svg = document.getElementById("graph");
  const LONG = 200; // characters of a value shown before "…"

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function compact(v) {
    const text = typeof v === "string" ? v : JSON.stringify(v);
    return text.length > LONG ? text.slice(0, LONG) + "… (" + text.length + " characters)" : text;
  }
  function table(caption, head, rows, cls) {
    const t = el("table", cls);
    t.appendChild(el("caption", "", caption));
    if (head) {
      const tr = t.appendChild(el("tr"));
      head.forEach(function (h) { tr.appendChild(el("th", "", h)); });
    }
    rows.forEach(function (row) {
      const tr = t.appendChild(el("tr"));
      row.forEach(function (cell, i) { tr.appendChild(el(i === 0 && !head ? "th" : "td", "", String(cell))); });
    });
    return t;
  }
  function name(n) {
    if (n.kind === "start") return "the start";
    if (n.kind === "state") return "state " + n.id.slice(1);
    return n.kind + " " + n.number;
  }
  function linkTo(id, text) {
    const b = el("button", "goto", text);
    b.type = "button";
    b.dataset.node = id;
    return b;
  }
  function edgesList(caption, edges, end) {
    const box = el("div", "moves");
    box.appendChild(el("p", "caption", caption));
    const ul = box.appendChild(el("ul"));
    edges.forEach(function (e) {
      const li = ul.appendChild(el("li"));
      li.appendChild(el("span", "move", e.label));
      li.appendChild(document.createTextNode(" → "));
      li.appendChild(linkTo(e[end], name(byId[e[end]])));
    });
    if (!edges.length) ul.appendChild(el("li", "hint", "none drawn"));
    return box;
  }

  function tasksTable(tasks) {
    const rows = tasks.map(function (t) {
      const where = t.frames.map(function (f) { return f.function + ":" + f.line; }).join(" › ");
      const none = t.syscall ? "(no frame of its program)" : "(has not run yet)";
      return [t.pid, t.comm, t.state, t.syscall || "-", t.wchan, where || none];
    });
    const t = table("tasks", ["PID", "COMM", "S", "SYSCALL", "STATE / WAITS FOR", "WHERE (frames)"], rows, "tasks");
    tasks.forEach(function (task) {
      const inner = task.frames.length ? task.frames[task.frames.length - 1].locals : {};
      const vars = Object.entries(inner).concat(Object.entries(task.globals || {}));
      if (!vars.length) return;
      const tr = t.appendChild(el("tr", "locals"));
      tr.appendChild(el("td", "", String(task.pid)));
      const td = tr.appendChild(el("td", "", vars.map(function (kv) { return kv[0] + " = " + compact(kv[1]); }).join(", ")));
      td.colSpan = 5;
    });
    return t;
  }
  function servicesBlock(services) {
    const box = el("div", "services");
    box.appendChild(el("p", "caption", "services (the fields their state_digest covers)"));
    Object.keys(services).forEach(function (svc) {
      const refs = services[svc]; // field -> its value's number in data.blobs (each value once per page)
      const d = box.appendChild(el("details"));
      d.dataset.service = svc;
      d.appendChild(el("summary", "", svc));
      const rows = Object.entries(refs).map(function (kv) { return [kv[0], compact(data.blobs[kv[1]])]; });
      d.appendChild(table(svc + " fields", null, rows.length ? rows : [["(none)", ""]], "fields"));
    });
    return box;
  }

  function show(n) {
    detail.textContent = "";
    const count = n.kind === "state" ? " · met " + n.met + (n.met === 1 ? " time" : " times")
      : n.kind === "start" ? "" : " · " + n.runs + (n.runs === 1 ? " run" : " runs");
    detail.appendChild(el("p", "detail-title", name(n) + " · depth " + n.depth + count));
    if (n.kind === "state") {
      const c = n.choice;
      const at = c.kind === "entry" ? "pid " + c.pid + " is about to enter " + c.syscall
        : "pid " + c.pid + " leaves the CPU (" + c.syscall + ")";
      detail.appendChild(el("p", "choice", "choice here: " + at + "; who runs next: pids " + c.options.join(", ")));
    }
    if (n.ending) {
      const e = n.ending;
      if (e.stdout !== undefined) {
        detail.appendChild(el("p", "caption", "stdout" + (e.exit_status !== undefined ? " (exit status " + e.exit_status + ")" : "")));
        detail.appendChild(el("pre", "output", e.stdout || "(nothing)"));
      }
      if (e.assertion) detail.appendChild(el("p", "bad", e.assertion));
      if (e.waits) {
        detail.appendChild(table("wait-for graph", ["PID", "COMM", "S", "SYSCALL", "WAITS FOR"],
          e.waits.map(function (w) { return [w.pid, w.comm, w.state, w.syscall || "-", w.waits_for]; }), "waits"));
      }
      if (e.problems) e.problems.forEach(function (p) { detail.appendChild(el("pre", "bad", p)); });
    }
    detail.appendChild(el("p", "caption", "the schedule that reaches it"));
    detail.appendChild(el("code", "replay", n.replay));
    if (n.kind === "state" && n.detail) {
      detail.appendChild(tasksTable(n.detail.tasks));
      detail.appendChild(servicesBlock(n.detail.services));
      const kernel = Object.entries(n.detail.kernel || {}).map(function (kv) { return [kv[0], compact(kv[1])]; });
      detail.appendChild(table("kernel", null, kernel, "fields"));
    } else if (n.kind === "state") {
      detail.appendChild(el("p", "hint", "Not spelled out: the search met more states than the page keeps."));
    }
    detail.appendChild(edgesList("choices from here", data.edges.filter(function (e) { return e.from === n.id; }), "to"));
    detail.appendChild(edgesList("reached from", data.edges.filter(function (e) { return e.to === n.id; }), "from"));
  }

  // The layout is centred on its widest layer: bring a node into the canvas's view.
  function reveal(n) {
    const canvas = document.getElementById("canvas");
    canvas.scrollLeft = Math.max(0, n.x - canvas.clientWidth / 2);
    canvas.scrollTop = Math.max(0, n.y - canvas.clientHeight / 2);
  }

  function select(id) {
    const n = byId[id];
    if (!n) return;
    reveal(n);
    svg.querySelectorAll(".selected, .near").forEach(function (g) { g.classList.remove("selected", "near"); });
    const g = svg.querySelector('.node[data-node="' + id + '"]');
    g.classList.add("selected");
    svg.querySelectorAll('.edge[data-from="' + id + '"], .edge[data-to="' + id + '"]').forEach(function (e) {
      e.classList.add("near");
    });
    show(n);
    if (location.hash !== "#node=" + id) history.replaceState(null, "", "#node=" + id);
  }

  svg.addEventListener("click", function (ev) {
    const g = ev.target.closest(".node");
    if (g) select(g.dataset.node);
  });
  svg.addEventListener("keydown", function (ev) {
    const g = ev.target.closest(".node");
    if (g && (ev.key === "Enter" || ev.key === " ")) { ev.preventDefault(); select(g.dataset.node); }
  });
  document.addEventListener("click", function (ev) {
    const b = ev.target.closest("button[data-node]");
    if (b) select(b.dataset.node);
  });
  const wanted = /^#node=(n\d+)$/.exec(location.hash);
  if (wanted) select(wanted[1]);
  else reveal(byId.n0);
  document.body.dataset.ready = "1";
})();
