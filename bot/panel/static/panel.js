// The technician panel: plain ES module, no build step, no third-party code (the shop may be offline).
// The REST API (/api/tech/*) is the source of truth; the WebSocket only says *what changed*, and the
// panel refetches that part. So a missed event costs at most one refetch, never a wrong screen.

const $ = (sel) => document.querySelector(sel);
const TOKEN_KEY = "repairbot.techSession"; // only the session is kept: it expires, the login token does not

const state = {
  token: localStorage.getItem(TOKEN_KEY) || "",
  me: null,
  queue: [],
  queueFetchedAt: 0,
  chats: [],
  failed: [], // admins: inbound messages the bot gave up on
  phone: null, // the open chat
  messages: [],
  ws: null,
  wsRetry: 0,
  dismissed: new Set(), // chats whose template offer the technician closed
};

// ---------- HTTP ----------

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(path, { method = "GET", json, form } = {}) {
  const headers = { Authorization: `Bearer ${state.token}` };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form; // the browser sets the multipart boundary itself
  }
  const response = await fetch(path, { method, headers, body });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { error: text }; }
  if (response.status === 401) {
    // A revoked or wrong token, or a session that expired or was ended: back to the login screen.
    logout("Your session ended or your token was not accepted. Please log in again.");
    throw new ApiError(401, data);
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

const chatPath = (phone, rest = "") => `/api/tech/chats/${encodeURIComponent(phone)}${rest}`;

// ---------- log in / out ----------

async function login(token) {
  state.token = token.trim();
  try {
    if (!state.token.startsWith("rs_")) {
      // The login token buys a session that expires; the browser remembers only the session.
      const session = await api("/api/tech/sessions", { method: "POST" });
      state.token = session.session;
    }
    state.me = await api("/api/tech/me");
  } catch (err) {
    if (err.status !== 401) $("#login-error").textContent = `Cannot log in: ${err.message}`;
    return;
  }
  localStorage.setItem(TOKEN_KEY, state.token);
  $("#login-view").hidden = true;
  $("#app-view").hidden = false;
  $("#me").textContent = `${state.me.name} (${state.me.role})`;
  $("#failed-box").hidden = !isAdmin();
  $("#dash-toggle").hidden = !isAdmin();
  connect();
  await Promise.all([loadQueue(), loadChats(), loadFailed()]);
}

const isAdmin = () => !!state.me && state.me.role === "admin";

function logout(reason = "") {
  localStorage.removeItem(TOKEN_KEY);
  state.token = "";
  state.me = null;
  state.phone = null;
  if (state.ws) {
    state.ws.onclose = null; // no reconnect after a deliberate logout
    state.ws.close();
    state.ws = null;
  }
  $("#app-view").hidden = true;
  $("#login-view").hidden = false;
  $("#login-error").textContent = reason;
  $("#token").value = "";
}

// ---------- live updates ----------

function setConn(stateName, label) {
  const el = $("#conn");
  el.dataset.state = stateName;
  el.textContent = label;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  // Browsers cannot put headers on a WebSocket, hence the token in the query string.
  const ws = new WebSocket(`${scheme}://${location.host}/api/tech/ws?token=${encodeURIComponent(state.token)}`);
  state.ws = ws;
  setConn("connecting", "connecting…");
  ws.onopen = () => {
    const wasRetry = state.wsRetry > 0;
    state.wsRetry = 0;
    setConn("online", "live");
    // After a gap we may have missed events: refetch everything once.
    if (wasRetry) refreshAll();
  };
  ws.onmessage = (event) => {
    let data;
    try { data = JSON.parse(event.data); } catch { return; }
    onEvent(data);
  };
  ws.onclose = () => {
    if (!state.token) return;
    // Exponential backoff with jitter, capped at 30 s, so a restarted server is not stampeded.
    const delay = Math.min(30000, 1000 * 2 ** state.wsRetry) * (0.75 + Math.random() / 2);
    state.wsRetry += 1;
    setConn("offline", `offline — retrying in ${Math.round(delay / 1000)} s`);
    // A revoked token also closes the socket: ask once, so a 401 brings back the login screen.
    if (state.wsRetry === 1) api("/api/tech/me").catch(() => {});
    setTimeout(() => { if (state.token) connect(); }, delay);
  };
}

// A chat is named by its customer's address: their phone, or (a customer without one) their
// business-scoped user ID; the /api/tech/chats/{phone} routes take either.
const phoneOf = (data) => data.address || data.phone || data.customer_phone;
// How an address reads: a phone with its +, a business-scoped user ID as it is.
const reach = (key) => (/^\+?\d+$/.test(key || "") ? `+${String(key).replace(/^\+/, "")}` : key || "");

function onEvent(data) {
  if (data.type === "queue") {
    loadQueue();
    loadChats();
  } else if (data.type === "message") {
    const phone = phoneOf(data);
    if (!phone || phone === state.phone) loadMessages();
    loadChats();
  } else if (data.type === "failed") {
    loadFailed();
    if (phoneOf(data) === state.phone) loadMessages();
  } else if (data.type === "status") {
    // Patch the tick in place when we can find the bubble; otherwise refetch the open chat.
    const wamid = data.wamid || data.whatsapp_message_id;
    const id = data.message_id ?? data.id;
    const status = data.status || data.delivery_status;
    const msg = state.messages.find(
      (m) => (wamid && m.wamid === wamid) || (id != null && String(m.id) === String(id)),
    );
    if (msg && status) {
      msg.status = status;
      msg.wamid = wamid || msg.wamid; // known only once the send went out
      msg.error = data.error || data.error_title || msg.error;
      renderMessages();
    } else if (!phoneOf(data) || phoneOf(data) === state.phone) {
      loadMessages();
    }
  }
}

async function refreshAll() {
  await Promise.all([loadQueue(), loadChats(), loadMessages(), loadFailed()]);
}

// ---------- queue and chats ----------

// Queue and chat items name the customer by `address` (or `phone`/`customer_phone`) and
// `display_name` (username, else profile name, else phone; or `name`/`customer_name`).
const chatItem = (c) => ({ ...c, phone: phoneOf(c), name: c.display_name || c.name || c.customer_name });

function fmtWait(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
}

async function loadQueue() {
  try {
    state.queue = ((await api("/api/tech/queue")) || []).map(chatItem);
    state.queueFetchedAt = Date.now();
    renderQueue();
  } catch (err) { /* shown by the connection indicator / next refresh */ }
}

async function loadChats() {
  try {
    state.chats = ((await api("/api/tech/chats")) || []).map(chatItem);
    renderChats();
    renderChatHead();
  } catch (err) { /* idem */ }
}

function renderQueue() {
  const list = $("#queue");
  list.replaceChildren();
  $("#queue-count").textContent = state.queue.length;
  for (const q of state.queue) {
    const li = document.createElement("li");
    li.className = "item" + (q.phone === state.phone ? " active" : "");
    li.dataset.test = "queue-item";
    li.dataset.phone = q.phone;
    li.innerHTML = `<div class="line"><strong></strong><span class="wait" data-test="waiting"></span></div><small></small>`;
    li.querySelector("strong").textContent = q.name || reach(q.phone);
    li.querySelector("small").textContent = [reach(q.phone), q.reason].filter(Boolean).join(" · ");
    li.querySelector(".wait").dataset.seconds = q.waiting_seconds || 0;
    li.onclick = () => openChat(q.phone, q.name);
    list.append(li);
  }
  tickWaits();
}

// Waiting times move every second without asking the server: base + time since the fetch.
function tickWaits() {
  const elapsed = (Date.now() - state.queueFetchedAt) / 1000;
  for (const el of document.querySelectorAll("#queue .wait")) {
    el.textContent = fmtWait(Number(el.dataset.seconds) + elapsed);
  }
}

function renderChats() {
  const list = $("#chats");
  list.replaceChildren();
  for (const c of state.chats) {
    const li = document.createElement("li");
    li.className = "item" + (c.phone === state.phone ? " active" : "");
    li.dataset.test = "chat-item";
    li.dataset.phone = c.phone;
    li.innerHTML = `<div class="line"><strong></strong></div><small></small>`;
    li.querySelector("strong").textContent = c.name || reach(c.phone);
    li.querySelector("small").textContent = reach(c.phone);
    li.onclick = () => openChat(c.phone, c.name);
    list.append(li);
  }
  if (!state.chats.length) list.innerHTML = `<li class="muted">none</li>`;
}

async function loadFailed() {
  if (!isAdmin()) return; // the list is for admins (a technician gets 403)
  try {
    state.failed = ((await api("/api/tech/failed")) || []).map(chatItem);
    renderFailed();
  } catch (err) { /* idem */ }
}

function renderFailed() {
  const list = $("#failed");
  list.replaceChildren();
  $("#failed-count").textContent = state.failed.length;
  for (const f of state.failed) {
    const li = document.createElement("li");
    li.className = "item" + (f.phone === state.phone ? " active" : "");
    li.dataset.test = "failed-item";
    li.dataset.phone = f.phone;
    li.dataset.wamid = f.wamid || "";
    li.innerHTML = `<div class="line"><strong></strong></div><small></small>`;
    li.querySelector("strong").textContent = f.name || reach(f.phone);
    li.querySelector("small").textContent = f.error || "not handled";
    li.onclick = () => openChat(f.phone, f.name);
    list.append(li);
  }
  if (!state.failed.length) list.innerHTML = `<li class="muted">none</li>`;
}

// ---------- the dashboard (admins) ----------

async function showDashboard() {
  const { renderDashboard } = await import("./dashboard.js"); // loaded only when an admin asks
  await renderDashboard($("#dashboard"), api, {
    from: $("#dash-from").value,
    to: $("#dash-to").value,
    group: $("#dash-group").value,
  });
}

function toggleDashboard() {
  const on = !document.body.classList.contains("show-dash");
  document.body.classList.toggle("show-dash", on);
  $("#dash-view").hidden = !on;
  $("#dash-toggle").textContent = on ? "Chats" : "Dashboard";
  if (on) showDashboard();
}

// ---------- the open chat ----------

// Mine: in my chats, and for an admin (who sees all chats) assigned to me.
function claimedByMe(phone) {
  const chat = state.chats.find((c) => c.phone === phone);
  if (!chat) return false;
  const owner = chat.technician_id ?? (chat.technician && chat.technician.id);
  return owner === undefined || owner === null || owner === state.me.id;
}

function renderChatHead() {
  if (!state.phone) return;
  const mine = claimedByMe(state.phone);
  const waiting = state.queue.some((q) => q.phone === state.phone);
  const chat = state.chats.find((c) => c.phone === state.phone);
  $("#claim").hidden = mine;
  $("#claim").disabled = !waiting && !!chat;
  $("#release").hidden = !mine;
  $("#transfer").hidden = !mine;
  $("#chat-owner").textContent = mine ? "claimed by you" : waiting ? "waiting" : chat ? "claimed" : "";
  for (const el of ["#composer", "#send", "#attach"]) $(el).disabled = !mine;
}

async function openChat(phone, name) {
  state.phone = phone;
  state.messages = [];
  $("#chat-empty").hidden = true;
  $("#chat").hidden = false;
  $("#chat-name").textContent = name || reach(phone);
  $("#chat-phone").textContent = reach(phone);
  $("#chat-error").textContent = "";
  $("#template-box").hidden = true;
  document.body.classList.add("show-chat");
  renderQueue();
  renderChats();
  if (isAdmin()) renderFailed();
  renderChatHead();
  await Promise.all([loadMessages(), loadCustomer(phone)]);
}

// The API's field names, with the message log's longer ones accepted too.
function normalize(m) {
  return {
    id: m.id,
    kind: m.kind || (m.type === "note" ? "note" : "message"),
    direction: m.direction || m.message_direction || "inbound",
    type: m.type || m.message_type || "text",
    content: m.content ?? m.message_content ?? m.text ?? "",
    fileUrl: m.file_url || m.url || null,
    fileName: m.file_name || m.filename || null,
    fileNote: m.file_note || null,
    status: m.delivery_status || m.status || null,
    error: m.error || m.error_title || (m.error_code ? `error ${m.error_code}` : null),
    wamid: m.whatsapp_message_id || m.wamid || null,
    at: m.at || m.created_at || m.sent_at || m.received_at || null,
    attempts: m.attempts ?? 0,
  };
}

async function loadMessages() {
  const phone = state.phone;
  if (!phone) return;
  try {
    const data = await api(chatPath(phone, "/messages"));
    if (phone !== state.phone) return; // the technician moved on meanwhile
    const items = Array.isArray(data) ? data : data.messages || [];
    state.messages = items.map(normalize);
    renderMessages();
    // The chat says when its 24-hour window is closed: offer the templates before a send fails.
    const offer = data.window_open === false && Array.isArray(data.templates) && claimedByMe(phone);
    if (offer && !state.dismissed.has(phone) && $("#template-box").hidden) {
      showTemplates({ error: data.window_note, templates: data.templates });
    }
  } catch (err) {
    if (err.status !== 401) $("#chat-error").textContent = err.message;
  }
}

const TICKS = { pending: "🕓", queued: "🕓", sent: "✓", delivered: "✓✓", read: "✓✓", failed: "✗" };

function tickFor(m) {
  const tick = document.createElement("span");
  tick.className = "tick";
  tick.dataset.test = "tick";
  tick.dataset.status = m.status || "queued";
  tick.textContent = TICKS[m.status] || "🕓";
  tick.setAttribute("aria-label", m.status || "queued");
  if (m.status === "failed") {
    const reason = m.error || "not delivered";
    tick.title = reason; // hover on a desktop
    // Tap on a phone (no hover there): show the reason under the bubble.
    tick.onclick = (e) => {
      const bubble = e.target.closest(".bubble");
      if (!bubble.querySelector(".fail-reason")) {
        const p = document.createElement("div");
        p.className = "fail-reason";
        p.textContent = reason;
        bubble.append(p);
      }
    };
  }
  return tick;
}

// A customer's file comes only with the technician's session (a header an <img> cannot send), so it
// is fetched, kept as a blob for this page, and shown from that.
const mediaBlobs = new Map();

async function mediaUrl(path) {
  if (!mediaBlobs.has(path)) {
    const response = await fetch(path, { headers: { Authorization: `Bearer ${state.token}` } });
    if (!response.ok) throw new ApiError(response.status, null);
    mediaBlobs.set(path, URL.createObjectURL(await response.blob()));
  }
  return mediaBlobs.get(path);
}

function bodyFor(m) {
  const box = document.createElement("div");
  const isKept = m.fileUrl && m.fileUrl.startsWith("/api/tech/media/");
  const isUrl = m.fileUrl && /^(https?:|\/)/.test(m.fileUrl) && !isKept;
  if ((m.type === "image" || m.type === "sticker") && isKept) {
    const img = document.createElement("img");
    img.alt = m.fileName || "image";
    mediaUrl(m.fileUrl).then((url) => { img.src = url; }).catch(() => { img.alt = "image not available"; });
    box.append(img);
  } else if (isKept) {
    const a = document.createElement("a");
    a.href = "#";
    a.textContent = `📄 ${m.fileName || m.type}`;
    a.onclick = async (e) => {
      e.preventDefault();
      const link = document.createElement("a");
      link.href = await mediaUrl(m.fileUrl);
      link.download = m.fileName || m.type;
      link.click();
    };
    box.append(a);
  } else if (m.fileNote) {
    const span = document.createElement("span");
    span.className = "muted";
    span.textContent = `📄 ${m.fileName || m.type}: not kept (${m.fileNote})`;
    box.append(span);
  } else if ((m.type === "image" || m.type === "sticker") && isUrl) {
    const img = document.createElement("img");
    img.src = m.fileUrl;
    img.alt = m.fileName || "image";
    img.loading = "lazy";
    box.append(img);
  } else if (m.fileUrl || m.fileName) {
    const a = document.createElement(isUrl ? "a" : "span");
    if (isUrl) { a.href = m.fileUrl; a.target = "_blank"; a.rel = "noopener"; }
    a.textContent = `📄 ${m.fileName || m.type}`;
    box.append(a);
  }
  if (m.content) {
    const text = document.createElement("div");
    text.className = "text";
    text.textContent = m.content; // textContent, never innerHTML: customers write what they like
    box.append(text);
  }
  return box;
}

function renderMessages() {
  const list = $("#messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.replaceChildren();
  for (const m of state.messages) {
    const li = document.createElement("li");
    li.className = `bubble ${m.kind === "note" ? "note" : m.direction}`;
    li.dataset.test = m.kind === "note" ? "note" : "bubble";
    li.dataset.direction = m.direction;
    if (m.wamid) li.dataset.wamid = m.wamid;
    li.append(bodyFor(m));
    if (m.kind !== "note" && m.direction === "inbound" && m.status === "failed") {
      // The bot gave up on it (parked after its tries): say so, with why, for whoever answers now.
      const why = document.createElement("div");
      why.className = "fail-reason";
      why.dataset.test = "not-handled";
      why.textContent = `Not handled by the bot (${m.attempts || 0} tries): ${m.error || "unknown error"}`;
      li.append(why);
    }
    const meta = document.createElement("div");
    meta.className = "meta";
    if (m.at) meta.append(new Date(m.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
    if (m.kind !== "note" && m.direction === "outbound") meta.append(tickFor(m));
    li.append(meta);
    list.append(li);
  }
  if (atBottom || list.dataset.phone !== state.phone) list.scrollTop = list.scrollHeight;
  list.dataset.phone = state.phone;
}

// ---------- actions ----------

async function act(fn) {
  $("#chat-error").textContent = "";
  try {
    await fn();
  } catch (err) {
    if (err.status === 409 && err.body && Array.isArray(err.body.templates)) {
      showTemplates(err.body);
    } else if (err.status !== 401) {
      $("#chat-error").textContent = err.status === 409 ? `Not possible: ${err.message}` : err.message;
    }
  }
}

async function send() {
  const box = $("#composer");
  const text = box.value.trim();
  if (!text || !state.phone) return;
  const asNote = $("#as-note").checked;
  await act(async () => {
    await api(chatPath(state.phone, asNote ? "/notes" : "/messages"), { method: "POST", json: { text } });
    box.value = ""; // cleared only once the server took it, so nothing typed is lost on an error
    await loadMessages();
  });
}

// Outside the 24-hour window WhatsApp only accepts approved templates: say why, offer them.
function showTemplates(body) {
  $("#template-why").textContent = body.error || "The customer's 24-hour window is closed; send a template.";
  const select = $("#template-select");
  select.replaceChildren(...body.templates.map((name) => new Option(name, name)));
  $("#template-box").hidden = false;
}

async function sendTemplate() {
  const params = $("#template-params").value.split("|").map((p) => p.trim()).filter(Boolean);
  await act(async () => {
    await api(chatPath(state.phone, "/messages"), {
      method: "POST",
      json: { template: $("#template-select").value, params },
    });
    $("#template-box").hidden = true;
    $("#template-params").value = "";
    await loadMessages();
  });
}

async function attach(file) {
  const form = new FormData();
  form.append("file", file, file.name);
  await act(async () => {
    await api(chatPath(state.phone, "/media"), { method: "POST", form });
    await loadMessages();
  });
}

async function claim() {
  await act(async () => {
    await api(chatPath(state.phone, "/claim"), { method: "POST", json: {} });
    await Promise.all([loadQueue(), loadChats()]);
  });
}

async function release() {
  await act(async () => {
    await api(chatPath(state.phone, "/release"), { method: "POST", json: {} });
    await Promise.all([loadQueue(), loadChats()]);
  });
}

async function transfer() {
  // A prompt listing the colleagues is enough here: transfers are rare, and it works on any phone.
  let others = [];
  try {
    others = (await api("/api/tech/technicians")).filter((t) => t.id !== state.me.id);
  } catch { /* still possible by id */ }
  const list = others.map((t) => `${t.id} = ${t.name}`).join(", ");
  const answer = prompt(`Transfer to technician id${list ? ` (${list})` : ""}:`);
  const id = Number.parseInt(answer || "", 10);
  if (!Number.isInteger(id)) return;
  await act(async () => {
    await api(chatPath(state.phone, "/transfer"), { method: "POST", json: { technician_id: id } });
    await Promise.all([loadQueue(), loadChats()]);
  });
}

// ---------- the customer pane ----------

// Whether the customer opted out, and since when: the API's `opted_out_at` (a stop word: nothing the
// shop starts goes to them) and `marketing_opted_out_at` (marketing stopped in WhatsApp or error 131050).
function renderConsent(data) {
  const since = (at) => new Date(at).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  const lines = [];
  if (data.opted_out_at) {
    lines.push(`Opted out (STOP) since ${since(data.opted_out_at)}: no notices, reminders or templates `
      + "from the shop; replies to their messages still go.");
  }
  if (data.marketing_opted_out_at) {
    lines.push(`Marketing opted out since ${since(data.marketing_opted_out_at)}: no marketing templates.`);
  }
  const box = $("#consent");
  box.replaceChildren(...lines.map((line) => {
    const p = document.createElement("p");
    p.textContent = line;
    return p;
  }));
  box.hidden = !lines.length;
}

async function loadCustomer(phone) {
  const orders = $("#orders");
  const appts = $("#appointments");
  let data;
  try {
    data = await api(`/panel/api/customers/${encodeURIComponent(phone)}`);
  } catch (err) {
    orders.innerHTML = appts.innerHTML = `<li class="muted">unavailable</li>`;
    $("#consent").hidden = true;
    return;
  }
  if (phone !== state.phone) return;
  renderConsent(data);
  const card = (title, status, lines) => {
    const li = document.createElement("li");
    li.innerHTML = `<div class="line"><strong></strong> <span class="status"></span></div>`;
    li.querySelector("strong").textContent = title;
    li.querySelector(".status").textContent = status;
    for (const line of lines.filter(Boolean)) {
      const small = document.createElement("div");
      small.className = "muted";
      small.textContent = line;
      li.append(small);
    }
    return li;
  };
  orders.replaceChildren(...data.orders.map((o) => {
    const li = card(`#${o.order_number}`, o.status, [
      o.device_model, o.problem, o.quoted_price != null ? `quote: ${o.quoted_price}` : "",
    ]);
    li.dataset.test = "order";
    return li;
  }));
  appts.replaceChildren(...data.appointments.map((a) => {
    const when = new Date(a.starts_at).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
    const li = card(when, a.status, [a.device_model, a.order_number ? `order #${a.order_number}` : ""]);
    li.dataset.test = "appointment";
    return li;
  }));
  if (!data.orders.length) orders.innerHTML = `<li class="muted">no orders</li>`;
  if (!data.appointments.length) appts.innerHTML = `<li class="muted">no upcoming appointments</li>`;
}

// ---------- wiring ----------

function init() {
  $("#login-form").onsubmit = (e) => { e.preventDefault(); login($("#token").value); };
  $("#logout").onclick = () => logout();
  $("#dash-toggle").onclick = toggleDashboard;
  $("#dash-form").onsubmit = (e) => {
    e.preventDefault();
    showDashboard();
  };
  $("#composer-form").onsubmit = (e) => { e.preventDefault(); send(); };
  $("#composer").addEventListener("keydown", (e) => {
    // Enter sends, Shift+Enter breaks the line; never while an IME is composing (Chinese input).
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  $("#attach").onchange = (e) => {
    const file = e.target.files[0];
    if (file) attach(file);
    e.target.value = "";
  };
  $("#template-box").onsubmit = (e) => { e.preventDefault(); sendTemplate(); };
  $("#template-cancel").onclick = () => {
    $("#template-box").hidden = true;
    state.dismissed.add(state.phone);
  };
  $("#claim").onclick = claim;
  $("#release").onclick = release;
  $("#transfer").onclick = transfer;
  $("#back").onclick = () => document.body.classList.remove("show-chat");
  $("#info-toggle").onclick = () => document.body.classList.toggle("show-info");
  setInterval(tickWaits, 1000);
  // A slow safety net besides the WebSocket: the queue's order and times stay right even without it.
  setInterval(() => { if (state.me) loadQueue(); }, 30000);
  if (state.token) {
    // A remembered token: straight in (a 401 inside login() brings the login screen back).
    login(state.token).then(() => { if (!state.me) $("#login-view").hidden = false; });
  } else {
    $("#login-view").hidden = false;
  }
}

init();
