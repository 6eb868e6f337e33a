// The yiju console: the orders page (/) and the operator page (/ops). Plain JavaScript, no dependencies.
"use strict";

(() => {
  const SETTLED = new Set(["COMPLETED", "NEEDS_CLARIFICATION", "REJECTED", "PAYMENT_DECLINED", "FAILED",
    "CANCELLED", "AWAITING_CONFIRMATION"]);
  const TERMINAL = new Set([...SETTLED].filter((s) => s !== "AWAITING_CONFIRMATION"));
  const EXAMPLES = [
    "two bubble teas and a taxi home",
    "order two bubble teas and a latte to my office",
    "三副耳机",
    "buy a flagship smartphone",
  ];
  const session = { user: "", token: "" };

  // --- helpers -------------------------------------------------------------------------------------------

  const $ = (selector) => document.querySelector(selector);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  /** An element with properties (class, text, title, dataset, style…) and children (nodes or strings). */
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "style") Object.assign(node.style, value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node[key] = value;
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  /** Fen as yuan: 1800 -> ¥18.00. */
  function yuan(fen) {
    const value = Math.round(Number(fen) || 0);
    const abs = Math.abs(value);
    return `${value < 0 ? "-" : ""}¥${Math.floor(abs / 100).toLocaleString("en")}.${String(abs % 100).padStart(2, "0")}`;
  }

  /** Large amounts shortened: 299999999000 -> ¥3B (the exact amount goes in a tooltip). */
  function yuanShort(fen) {
    const value = (Number(fen) || 0) / 100;
    if (Math.abs(value) < 1e6) return yuan(fen);
    return `¥${new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 2 }).format(value)}`;
  }

  const number = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en"));
  const rate = (n) => (n === null || n === undefined ? "–" : Number(n).toFixed(n >= 10 ? 0 : 2));
  const ms = (n) => `${Number(n).toFixed(n >= 100 ? 0 : n >= 10 ? 1 : 2)} ms`;
  const serviceClass = (name) => `svc svc-${String(name || "other").replace(/[^a-z_]/gi, "")}`;

  function authHeaders() {
    return session.token ? { Authorization: `Bearer ${session.token}` } : {};
  }

  async function api(path, { method = "GET", body } = {}) {
    const headers = { Accept: "application/json", ...authHeaders() };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error((data.error && data.error.message) || `HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  /** Server-sent events over fetch (EventSource cannot send an Authorization header). */
  async function streamOrder(orderId, onOrder, signal) {
    const response = await fetch(`/v1/orders/${encodeURIComponent(orderId)}/events`, {
      headers: { Accept: "text/event-stream", ...authHeaders() },
      signal,
    });
    if (!response.ok || !response.body) throw new Error(`event stream: HTTP ${response.status}`);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (!line || line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let text = colon < 0 ? "" : line.slice(colon + 1);
          if (text.startsWith(" ")) text = text.slice(1);
          if (field === "event") event = text;
          else if (field === "data") data.push(text);
        }
        if (event === "order" && data.length) onOrder(JSON.parse(data.join("\n")));
      }
    }
  }

  // --- who the console acts as ---------------------------------------------------------------------------

  async function chooseUser(userId) {
    session.user = userId;
    session.token = "";
    localStorage.setItem("yiju.user", userId);
    try {
      const reply = await api(`/v1/console/session?user_id=${encodeURIComponent(userId)}`);
      session.token = reply.token || "";
    } catch (error) {
      console.warn("no demo session", error);
    }
    document.body.dataset.user = userId;
  }

  async function setUpSession() {
    const select = $("#user");
    let users = [];
    try {
      users = (await api("/v1/console/users")).users || [];
    } catch (error) {
      users = [];
    }
    if (!users.length) {
      // Not the local environment: the user brings their own id and token.
      select.hidden = true;
      $("#manual").hidden = false;
      const id = $("#manual-user");
      const token = $("#manual-token");
      const apply = () => {
        session.user = id.value.trim();
        session.token = token.value.trim();
      };
      id.addEventListener("change", apply);
      token.addEventListener("change", apply);
      return;
    }
    for (const user of users) {
      select.append(el("option", { value: user.id, text: `${user.name} (${user.id})` }));
    }
    const saved = localStorage.getItem("yiju.user");
    select.value = users.some((u) => u.id === saved) ? saved : users[users.length - 1].id;
    await chooseUser(select.value);
    select.addEventListener("change", () => chooseUser(select.value));
  }

  // --- the orders page ----------------------------------------------------------------------------------

  let following = null; // {orderId, controller}
  let traceTimer = null;

  function renderOrder(order) {
    $("#order").hidden = false;
    $("#order-id").textContent = order.order_id;
    $("#order-text").textContent = `“${order.text}”`;
    const status = $("#status");
    status.textContent = order.status;
    status.className = `status status-${order.status}`;
    $("#timeline").replaceChildren(
      ...(order.history || []).map((h) =>
        el("li", { class: `status-${h.status}`, title: h.at }, el("span", { text: h.status }),
          el("time", { text: (h.at || "").slice(11, 23) }))),
    );
    const reason = $("#reason");
    reason.hidden = !order.reason;
    reason.textContent = order.reason || "";
    $("#decide").hidden = order.status !== "AWAITING_CONFIRMATION";

    const lines = order.lines || [];
    $("#lines tbody").replaceChildren(
      ...(lines.length
        ? lines.map((l) => el("tr", {},
          el("td", {}, el("div", { text: l.name }), el("div", { class: "muted small", text: l.sku })),
          el("td", { text: l.vertical }),
          el("td", { class: "num", text: String(l.quantity) }),
          el("td", { class: "num", text: yuan(l.unit_price_fen) }),
          el("td", { class: "num", text: yuan(l.line_total_fen) })))
        : [el("tr", {}, el("td", { colSpan: 5, class: "muted", text: "No plan yet." }))]),
    );
    const foot = [];
    if (lines.length) {
      foot.push(el("tr", {}, el("td", { colSpan: 4, text: "Subtotal" }), el("td", { class: "num", text: yuan(order.subtotal_fen) })));
      foot.push(el("tr", {}, el("td", { colSpan: 4, text: "Subsidy" }), el("td", { class: "num", text: yuan(-order.subsidy_fen) })));
      foot.push(el("tr", { class: "total" }, el("td", { colSpan: 4, text: "Total" }),
        el("td", { id: "total", class: "num", text: yuan(order.total_fen) })));
    }
    $("#lines tfoot").replaceChildren(...foot);

    const payment = order.payment || { status: "NONE", authorized_fen: 0, captured_fen: 0 };
    $("#payment").replaceChildren(
      el("dt", { text: "Status" }), el("dd", {}, el("span", { class: `pill status-${payment.status}`, text: payment.status })),
      el("dt", { text: "Authorized" }), el("dd", { text: yuan(payment.authorized_fen) }),
      el("dt", { text: "Captured" }), el("dd", { text: yuan(payment.captured_fen) }),
    );
    const records = order.fulfilment || [];
    $("#fulfilment tbody").replaceChildren(
      ...(records.length
        ? records.map((f) => el("tr", {}, el("td", { text: f.sku }),
          el("td", {}, el("span", { class: `pill status-${f.status}`, text: f.status })),
          el("td", { class: "muted", text: f.provider_ref || "–" })))
        : [el("tr", {}, el("td", { colSpan: 3, class: "muted", text: "Nothing fulfilled yet." }))]),
    );
    if (order.trace_id) {
      $("#trace").hidden = false;
      $("#trace-id").textContent = order.trace_id;
    }
  }

  function renderWaterfall(trace) {
    const spans = trace.spans || [];
    const total = Math.max(trace.duration_ms || 0, 0.001);
    const services = trace.services || [];
    $("#trace-summary").textContent = spans.length
      ? `${spans.length} spans across ${services.length} services in ${ms(trace.duration_ms)} ` +
        `(${trace.source === "remote" ? "trace backend" : "local span store"}) · in a terminal: yiju trace ${trace.order_id}`
      : "No spans yet (they are written every half second).";
    const axis = el("div", { class: "span-row axis" }, el("div", { class: "span-label", text: "span" }),
      el("div", { class: "span-service", text: "service" }),
      el("div", { class: "span-track" }, el("span", { text: "0" }), el("span", { text: ms(total) })),
      el("div", { class: "span-ms", text: "duration" }));
    const rows = spans.map((span) => {
      const left = (span.offset_ms / total) * 100;
      const width = Math.max((span.duration_ms / total) * 100, 0.4);
      const details = el("div", { class: "span-details", hidden: true },
        el("div", { class: "muted small", text: `${span.kind || ""} · span ${span.span_id} · +${ms(span.offset_ms)}` }),
        el("dl", {}, Object.entries(span.attributes || {}).flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })])));
      const row = el("div", { class: `span-row${span.status === "ERROR" ? " error" : ""}`, title: span.name },
        el("div", { class: "span-label", style: { paddingLeft: `${span.depth * 14}px` }, text: span.name }),
        el("div", { class: "span-service" }, el("span", { class: serviceClass(span.service), text: span.service })),
        el("div", { class: "span-track" },
          el("div", { class: `span-bar ${serviceClass(span.service)}`, style: { left: `${Math.min(left, 99.6)}%`, width: `${width}%` } })),
        el("div", { class: "span-ms", text: ms(span.duration_ms) }));
      row.addEventListener("click", () => { details.hidden = !details.hidden; });
      return [row, details];
    });
    $("#waterfall").replaceChildren(axis, ...rows.flat());
  }

  async function loadTrace(orderId) {
    try {
      const trace = await api(`/v1/orders/${encodeURIComponent(orderId)}/trace`);
      if (following && following.orderId === orderId) renderWaterfall(trace);
    } catch (error) {
      $("#trace-summary").textContent = `Trace unavailable: ${error.message}`;
    }
  }

  function scheduleTrace(orderId, delay) {
    clearTimeout(traceTimer);
    traceTimer = setTimeout(() => loadTrace(orderId), delay);
  }

  /** Show the order live until it reaches a status in `until`, then settle the trace. */
  async function follow(orderId, until = SETTLED) {
    if (following) following.controller.abort();
    const controller = new AbortController();
    following = { orderId, controller };
    let order = await api(`/v1/orders/${encodeURIComponent(orderId)}`);
    let lastStatus = "";
    const show = (next) => {
      order = next;
      renderOrder(next);
      if (next.status !== lastStatus) {
        lastStatus = next.status;
        scheduleTrace(orderId, 300);
      }
    };
    show(order);
    while (!until.has(order.status) && !controller.signal.aborted) {
      try {
        await streamOrder(orderId, show, controller.signal);
      } catch (error) {
        if (controller.signal.aborted) return;
        await sleep(1000);
      }
      if (!until.has(order.status) && !controller.signal.aborted) {
        await sleep(300);
        show(await api(`/v1/orders/${encodeURIComponent(orderId)}`));
      }
    }
    settleTrace(orderId, controller.signal); // not awaited: the order is done, the form is free again
  }

  /** Spans are flushed every 0.5 s: read the trace again once the last ones are in. */
  async function settleTrace(orderId, signal) {
    for (const delay of [800, 2500]) {
      await sleep(delay);
      if (signal.aborted) return;
      await loadTrace(orderId);
    }
  }

  function showFormError(message) {
    const box = $("#form-error");
    box.hidden = !message;
    box.textContent = message || "";
  }

  async function submit(event) {
    event.preventDefault();
    const text = $("#text").value.trim();
    if (!text) return;
    showFormError("");
    const button = $("#submit");
    button.disabled = true;
    try {
      const accepted = await api("/v1/intents", {
        method: "POST",
        body: { user_id: session.user, text, idempotency_key: crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) },
      });
      $("#waterfall").replaceChildren();
      $("#trace-summary").textContent = "";
      await follow(accepted.order_id).catch((error) => showFormError(error.message));
    } catch (error) {
      showFormError(error.message);
    } finally {
      button.disabled = false;
    }
  }

  async function decide(action) {
    if (!following) return;
    const { orderId } = following;
    try {
      await api(`/v1/orders/${encodeURIComponent(orderId)}/${action}`, { method: "POST" });
      await follow(orderId, TERMINAL);
    } catch (error) {
      showFormError(error.message);
    }
  }

  function setUpOrdersPage() {
    $("#examples").replaceChildren(...EXAMPLES.map((text) =>
      el("button", { type: "button", class: "chip", text, onclick: () => { $("#text").value = text; $("#text").focus(); } })));
    $("#intent-form").addEventListener("submit", submit);
    $("#text").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("#intent-form").requestSubmit();
    });
    $("#confirm").addEventListener("click", () => decide("confirm"));
    $("#cancel").addEventListener("click", () => decide("cancel"));
    const fromHash = decodeURIComponent(location.hash.slice(1));
    if (fromHash) follow(fromHash).catch((error) => showFormError(error.message));
  }

  // --- the ops page -------------------------------------------------------------------------------------

  function renderOps(summary) {
    $("#ops-error").hidden = true;
    $("#updated").textContent = `updated ${new Date().toLocaleTimeString()}` +
      (summary.window_s ? ` · rates over ${summary.window_s.toFixed(0)} s` : "");
    $("#services").replaceChildren(...summary.services.map((s) =>
      el("span", { class: `chip ${s.up ? "up" : "down"}`, title: s.error || s.target,
        text: `${s.up ? "●" : "○"} ${s.name}${s.replicas > 1 ? ` ${s.replicas_up}/${s.replicas}` : ""}` })));

    const t = summary.throughput;
    $("#kpi-throughput").textContent = t.consumed_per_s === null ? "–" : `${rate(t.consumed_per_s)}/s`;
    $("#kpi-throughput-sub").textContent = t.consumed_per_s === null
      ? `${number(t.consumed_total)} records so far · rates from the next refresh`
      : `consumed; ${rate(t.published_per_s)}/s published · ${number(t.consumed_total)} records so far`;
    const lags = summary.consumer_groups.map((g) => g.lag).filter((l) => l !== null);
    $("#kpi-lag").textContent = lags.length ? number(lags.reduce((a, b) => a + b, 0)) : "–";
    const d = summary.dead_letters;
    $("#kpi-dlq").textContent = number(d.total);
    $("#kpi-dlq").classList.toggle("bad", d.total > 0);
    $("#kpi-dlq-sub").textContent = Object.entries(d.by_reason).map(([r, n]) => `${r}: ${n}`).join(" · ") || "none";

    const s = summary.subsidy;
    if (s && s.left_fen !== null) {
      $("#kpi-budget").textContent = yuanShort(s.left_fen);
      $("#kpi-budget").title = yuan(s.left_fen);
      $("#kpi-budget-bar").style.width = `${Math.max(0, Math.min(100, (s.left_fen / s.budget_fen) * 100))}%`;
      $("#kpi-budget-sub").textContent = `of ${yuanShort(s.budget_fen)} · ${s.name}`;
    } else {
      $("#kpi-budget").textContent = "–";
      $("#kpi-budget-sub").textContent = s ? s.error || "not seeded yet" : "no campaign";
    }
    const g = summary.gateway;
    $("#kpi-cache").textContent = g.cache_hit_ratio === null ? "–" : `${(g.cache_hit_ratio * 100).toFixed(1)}%`;
    $("#kpi-cache-sub").textContent = `${number(g.cache_hits_total)} hits / ${number(g.cache_misses_total)} misses · ` +
      `batch ${g.batch_size_avg === null ? "–" : g.batch_size_avg.toFixed(1)} · ${number(g.fallbacks_total)} fallbacks`;

    $("#groups tbody").replaceChildren(...summary.consumer_groups.map((c) => el("tr", {},
      el("td", { text: c.group }), el("td", {}, el("span", { class: serviceClass(c.service), text: c.service })),
      el("td", { class: "num", text: number(c.lag) }), el("td", { class: "num", text: number(c.handled_total) }),
      el("td", { class: `num${c.dead_letters_total ? " bad" : ""}`, text: number(c.dead_letters_total), title: c.dead_letter_topic }),
      el("td", { class: "num", text: c.p99_ms === null ? "–" : c.p99_ms.toFixed(1) }))));
    $("#topics tbody").replaceChildren(...t.topics.map((row) => el("tr", {},
      el("td", { text: row.topic }), el("td", { class: "num", text: number(row.published_total) }),
      el("td", { class: "num", text: rate(row.published_per_s) }), el("td", { class: "num", text: number(row.consumed_total) }),
      el("td", { class: "num", text: rate(row.consumed_per_s) }))));
    const statuses = Object.entries(summary.orders_by_status);
    $("#statuses tbody").replaceChildren(...(statuses.length
      ? statuses.map(([status, count]) => el("tr", {},
        el("td", {}, el("span", { class: `pill status-${status}`, text: status })), el("td", { class: "num", text: number(count) })))
      : [el("tr", {}, el("td", { colSpan: 2, class: "muted", text: "No orders yet." }))]));
  }

  async function refreshOps() {
    try {
      renderOps(await api("/v1/ops/summary"));
    } catch (error) {
      const box = $("#ops-error");
      box.hidden = false;
      box.textContent = `Cannot read the summary: ${error.message}`;
    }
  }

  async function setUpOpsPage() {
    await refreshOps();
    setInterval(() => { if (!document.hidden) refreshOps(); }, 2000);
  }

  // --- start --------------------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", async () => {
    await setUpSession();
    if (document.body.dataset.page === "ops") await setUpOpsPage();
    else setUpOrdersPage();
    document.body.dataset.ready = "true";
  });
})();
