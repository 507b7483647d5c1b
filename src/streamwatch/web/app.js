/* streamwatch live-ops page: what the ops room keeps on the wall.
 *
 * - the alert feed over WS /v1/alerts/stream (CONTRACTS §5): a snapshot of open incidents, then
 *   one message per alert event; after a drop it reconnects with back-off and `since=<last id>`,
 *   so nothing is missed or shown twice;
 * - level colours (1 red, 2 orange, 3 yellow, 4 grey); a level-1 alert flashes a banner and, once
 *   someone clicked "Enable sound" (browsers refuse audio before a click), beeps;
 * - open incidents per team, kept from the same events (firing adds/updates, resolved removes);
 * - per room, sparklines of viewers and GMV/min from GET /v1/streams, polled every 3 s, the last
 *   100 points kept here.
 * `?token=` in the page URL is passed on (websocket query, Bearer header on fetches); `team`,
 * `min_level` and `stream` are passed to the feed as its filters; `poll` sets the seconds
 * between room polls (default 3, at least 0.5). Text from the server is only ever set as
 * textContent, never parsed as HTML.
 */
"use strict";

(() => {
  const TEAMS = [
    ["live_ops", "Live ops", "直播运营"], ["tech", "Tech", "技术保障"],
    ["customer_service", "Customer service", "客服"], ["logistics", "Logistics", "物流"],
    ["command", "Command", "指挥中心"],
  ];
  const LEVELS = { 1: ["critical", "一级"], 2: ["major", "二级"], 3: ["minor", "三级"],
                   4: ["notice", "四级"] };
  const FEED_MAX = 200;         // feed items kept in the DOM
  const POINTS = 100;           // sparkline points per room (100 x 3 s = 5 min)
  const BACKOFF_MIN_MS = 500, BACKOFF_MAX_MS = 15000;

  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  const POLL_MS = Math.max(500, 1000 * (Number(params.get("poll")) || 3));   // ?poll=SECONDS
  const REVIEW_MS = 60000;                                  // the review 复盘 panel's refresh
  const state = {
    lastId: null, connLast: null, events: 0, ws: null, attempt: 0, connected: false, retryIn: 0,
    incidents: new Map(),      // incident id -> {id, type, stream, team, level, status, ...}
    rooms: new Map(),          // stream -> {viewers: [], gmv: [], last: {...}}
    roomsError: null, polls: 0, sound: false, audio: null, lastBeep: 0, beeps: 0,
    bannerHidden: false,
  };
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("data-")) node.setAttribute(k, String(v));
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }
  const zh = (text) => el("span", { lang: "zh", class: "zh" }, text);
  const teamName = (team) => (TEAMS.find((t) => t[0] === team) || [team, team])[1];

  function fmtTime(ts) {
    if (typeof ts !== "number" || !isFinite(ts)) return "—";
    const d = new Date(ts * 1000);
    const time = d.toLocaleTimeString("en-GB", { hour12: false });
    const today = new Date().toDateString() === d.toDateString();
    return today ? time : `${d.toISOString().slice(0, 10)} ${time}`;
  }
  function fmtNum(v) {
    if (typeof v !== "number" || !isFinite(v)) return "—";
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
    return a >= 100 ? Math.round(v).toLocaleString("en") : String(Math.round(v * 10) / 10);
  }

  /* ---- the websocket feed ---------------------------------------------------------------- */
  function feedUrl() {
    const q = new URLSearchParams();
    for (const k of ["team", "min_level", "stream"]) if (params.get(k)) q.set(k, params.get(k));
    if (token) q.set("token", token);
    if (state.lastId) q.set("since", state.lastId);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const qs = q.toString();
    return `${scheme}//${location.host}/v1/alerts/stream${qs ? "?" + qs : ""}`;
  }

  function connect() {
    let ws;
    try {
      ws = new WebSocket(feedUrl());
    } catch (err) {
      scheduleReconnect(String(err));
      return;
    }
    state.ws = ws;
    state.connLast = null;
    document.body.dataset.ws = "connecting";
    ws.onopen = () => {
      state.connected = true;
      document.body.dataset.ws = "open";
      renderStatus();
    };
    ws.onmessage = (msg) => {
      let data;
      try { data = JSON.parse(msg.data); } catch { return; }
      state.attempt = 0;       // a message came through: the connection works
      onMessage(data);
    };
    ws.onclose = (ev) => {
      if (state.ws !== ws) return;
      state.connected = false;
      state.ws = null;
      scheduleReconnect(ev.reason || `closed (${ev.code})`);
    };
    ws.onerror = () => {};     // onclose follows and does the work
  }

  function scheduleReconnect(why) {
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** state.attempt);
    const delay = base / 2 + Math.random() * base / 2;   // jitter: not every wall at once
    state.attempt += 1;
    state.retryIn = Math.max(1, Math.round(delay / 1000));
    state.closeReason = why;
    document.body.dataset.ws = "reconnecting";
    renderStatus();
    setTimeout(connect, delay);
  }

  function onMessage(m) {
    if (m.type === "snapshot") {
      // the first snapshot reflects every event up to last_id: resume from there after a drop
      if (state.lastId === null && typeof m.last_id === "string") state.lastId = m.last_id;
      state.incidents.clear();
      for (const inc of m.incidents || []) {
        if (inc && inc.id && inc.status !== "resolved") state.incidents.set(inc.id, normal(inc));
      }
      renderTeams();
      renderBanner();
    } else if (m.type === "alert") {
      // ids sort in emission order; the server resumes after `since`, so an older id can only
      // be a repeat on this connection, or - first thing after a reconnect - a restarted
      // service numbering from 1 again, whose alerts must not be thrown away
      if (state.connLast !== null && m.id <= state.connLast) return;
      if (state.connLast === null && state.lastId !== null && m.id <= state.lastId) {
        addNote("The service restarted: alert ids begin again.");
      }
      state.connLast = state.lastId = m.id;
      state.events += 1;
      addFeedItem(m);
      applyEvent(m);
      if (m.level === 1 && m.status === "firing") alarm();
    } else if (m.type === "lagging" || m.type === "gap") {
      addNote(m.type === "gap"
        ? "Some alerts were missed while disconnected; open incidents were reloaded."
        : "This page fell behind the feed; it is catching up.");
    }
    renderStatus();
  }

  /* snapshot incidents and alert events carry the same facts under different names */
  function normal(x) {
    const isEvent = "incident_id" in x;
    return {
      id: isEvent ? x.incident_id : x.id, type: isEvent ? x.incident_type : x.type,
      stream: x.stream, team: x.team, level: x.level, summary: x.summary || "",
      since: isEvent ? x.ts : x.started_at, status: isEvent ? "open" : x.status,
      impact: x.impact || null,
    };
  }

  function applyEvent(e) {
    if (e.status === "resolved") {
      state.incidents.delete(e.incident_id);
    } else {
      const old = state.incidents.get(e.incident_id);
      const inc = normal(e);
      if (old) { inc.since = old.since; inc.status = old.status; }
      state.incidents.set(e.incident_id, inc);
    }
    renderTeams();
    renderBanner();
  }

  /* ---- feed ------------------------------------------------------------------------------ */
  function addFeedItem(e) {
    const [lname, lzh] = LEVELS[e.level] || ["?", ""];
    const resolved = e.status === "resolved";
    const li = el("li", {
      class: `alert lvl-${e.level}${resolved ? " resolved" : ""}`,
      "data-event-id": e.id, "data-incident-id": e.incident_id, "data-level": e.level,
      "data-status": e.status,
    },
      el("span", { class: "badge" }, `L${e.level} `, zh(lzh)),
      el("time", { datetime: new Date(e.ts * 1000).toISOString() }, fmtTime(e.ts)),
      el("span", { class: "what" },
        el("b", {}, resolved ? "resolved " : "", e.incident_type || ""), " · ",
        teamName(e.team), " · ", el("span", { class: "stream" }, e.stream)),
      el("span", { class: "summary" }, e.summary || ""),
      impactText(e.impact),
    );
    li.title = `${lname}: ${e.summary || ""}`;
    const list = $("feed");
    list.prepend(li);
    while (list.children.length > FEED_MAX) list.lastElementChild.remove();
    $("feed-empty").hidden = true;
  }

  function impactText(impact) {
    if (!impact) return null;
    return el("span", { class: "impact" },
      `${fmtNum(impact.viewers)} viewers · ${fmtNum(impact.gmv_per_min)} GMV/min at risk`);
  }

  function addNote(text) {
    $("feed").prepend(el("li", { class: "note" }, text));
    $("feed-empty").hidden = true;
  }

  /* ---- incidents per team ---------------------------------------------------------------- */
  function renderTeams() {
    const box = $("teams");
    const known = new Set(TEAMS.map((t) => t[0]));
    const teams = TEAMS.slice();
    for (const inc of state.incidents.values()) {   // a team the page does not know yet
      if (!known.has(inc.team)) { known.add(inc.team); teams.push([inc.team, inc.team, ""]); }
    }
    box.replaceChildren(...teams.map(([key, name, cn]) => {
      const items = [...state.incidents.values()].filter((i) => i.team === key)
        .sort((a, b) => a.level - b.level || (b.since || 0) - (a.since || 0));
      const list = el("ul", {}, ...items.map((i) => el("li", {
        class: `incident lvl-${i.level}`, "data-incident-id": i.id, "data-level": i.level,
      },
        el("span", { class: "badge" }, `L${i.level}`),
        " ", el("span", { class: "stream" }, i.stream), " ",
        el("b", {}, i.type), i.status === "acked" ? el("span", { class: "acked" }, " acked") : null,
        el("span", { class: "summary" }, i.summary),
        el("time", {}, "since " + fmtTime(i.since)))));
      return el("section", { class: "team", id: `team-${key}`, "data-team": key,
                             "aria-label": `${name}: ${items.length} open` },
        el("h3", {}, name, " ", cn ? zh(cn) : null, " ",
           el("span", { class: `count${items.length ? " busy" : ""}` }, String(items.length))),
        items.length ? list : el("p", { class: "empty" }, "none"));
    }));
  }

  /* ---- level 1: banner and beep ---------------------------------------------------------- */
  function renderBanner() {
    const crit = [...state.incidents.values()].filter((i) => i.level === 1);
    const banner = $("banner");
    if (!crit.length) state.bannerHidden = false;
    banner.hidden = !crit.length || state.bannerHidden;
    $("banner-text").textContent = crit.length
      ? crit.map((i) => `${i.stream} ${i.type} (${teamName(i.team)})`).join(" · ") : "";
    document.title = `${crit.length ? `(${crit.length}) LEVEL 1 · ` : ""}streamwatch · live ops`;
  }

  function alarm() {
    state.bannerHidden = false;   // a new level-1 alert brings the banner back
    renderBanner();
    const banner = $("banner");
    banner.classList.remove("flash");
    void banner.offsetWidth;      // restart the flashing animation
    banner.classList.add("flash");
    beep();
  }

  function beep() {
    if (!state.sound || !state.audio) return;
    const now = Date.now();
    if (now - state.lastBeep < 2000) return;   // one alarm, not a siren, for a burst of alerts
    state.lastBeep = now;
    state.beeps += 1;
    const ctx = state.audio, t = ctx.currentTime;
    for (const start of [0, 0.25]) {
      const osc = ctx.createOscillator(), gain = ctx.createGain();
      osc.type = "square";
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.0001, t + start);
      gain.gain.exponentialRampToValueAtTime(0.2, t + start + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + start + 0.18);
      osc.connect(gain).connect(ctx.destination);
      osc.start(t + start);
      osc.stop(t + start + 0.2);
    }
  }

  function toggleSound() {
    const btn = $("sound");
    state.sound = !state.sound;
    if (state.sound) {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) { state.sound = false; btn.textContent = "No audio in this browser"; return; }
      state.audio = state.audio || new Ctx();
      state.audio.resume();
      state.lastBeep = 0;
      beep();                     // the click that allowed audio also proves it works
    }
    btn.setAttribute("aria-pressed", String(state.sound));
    btn.replaceChildren(state.sound ? "Sound on " : "Enable sound ",
                        zh(state.sound ? "声音已开" : "开启声音"));
  }

  /* ---- rooms: polling /v1/streams -------------------------------------------------------- */
  async function poll() {
    try {
      const headers = token ? { Authorization: `Bearer ${token}` } : {};
      const r = await fetch("/v1/streams", { headers, cache: "no-store" });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const body = await r.json();
      const list = Array.isArray(body) ? body : body.items || body.streams || [];
      for (const s of list) {
        if (!s || typeof s.stream !== "string" || s.stream.startsWith("svc:")) continue;
        const m = s.metrics || {};
        let room = state.rooms.get(s.stream);
        if (!room) state.rooms.set(s.stream, room = { viewers: [], gmv: [] });
        push(room.viewers, m.viewers);
        push(room.gmv, m.gmv_total);
        room.last = s;
      }
      state.roomsError = null;
      state.polls += 1;
    } catch (err) {
      state.roomsError = String(err.message || err);
    }
    renderRooms();
    renderStatus();
    setTimeout(poll, POLL_MS);   // the next poll after this one ended: never two at once
  }
  /* ---- review 复盘: GET /v1/reports/review every minute ----------------------------------- */
  async function pollReview() {
    const secs = (v) => (typeof v !== "number" ? "—" : v < 120 ? `${Math.round(v)} s`
      : v < 7200 ? `${(v / 60).toFixed(1)} min` : `${(v / 3600).toFixed(1)} h`);
    const pair = (d) => `${secs(d.median)} / ${secs(d.p90)}`;
    const tbody = $("review").tBodies[0];
    try {
      const headers = token ? { Authorization: `Bearer ${token}` } : {};
      const r = await fetch("/v1/reports/review", { headers, cache: "no-store" });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const rep = await r.json();
      const row = (x, team, level) => el("tr", null, el("td", null, team), el("td", null, level),
        el("td", null, x.incidents), el("td", null, pair(x.time_to_detect_s)),
        el("td", null, pair(x.time_to_ack_s)), el("td", null, pair(x.time_to_resolve_s)),
        el("td", null, x.false_alarms));
      tbody.replaceChildren(...rep.rows.map((x) => row(x, teamName(x.team), `L${x.level}`)),
                            row(rep.total, "All", "all"));
      $("review-note").textContent = "last 24 h · median / p90 · escalations not tracked yet";
    } catch (err) {
      $("review-note").textContent = `review unavailable: ${err.message || err}`;
    }
    setTimeout(pollReview, REVIEW_MS);
  }
  function push(arr, v) {
    arr.push(typeof v === "number" && isFinite(v) ? v : null);
    if (arr.length > POINTS) arr.splice(0, arr.length - POINTS);
  }

  const SVG = "http://www.w3.org/2000/svg";
  function sparkline(values, label) {
    const w = 120, h = 28, pad = 2;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    svg.setAttribute("class", "spark");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", label);
    const pts = values.map((v, i) => [i, v]).filter((p) => p[1] !== null);
    if (pts.length) {
      // from zero up (a collapse to nothing must look like one, noise must not), unless the
      // series goes negative; the points spread over the whole width as they come in
      const ys = pts.map((p) => p[1]);
      const lo = Math.min(0, ...ys), hi = Math.max(...ys), span = hi - lo;
      const x = (i) => pad + (w - 2 * pad) * (values.length > 1 ? i / (values.length - 1) : 1);
      const y = (v) => h - pad - (h - 2 * pad) * (span > 0 ? (v - lo) / span : 0);
      const line = document.createElementNS(SVG, "polyline");
      line.setAttribute("points", pts.map(([i, v]) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`)
        .join(" "));
      svg.append(line);
      const [li, lv] = pts[pts.length - 1];
      const dot = document.createElementNS(SVG, "circle");
      dot.setAttribute("cx", x(li).toFixed(1));
      dot.setAttribute("cy", y(lv).toFixed(1));
      dot.setAttribute("r", "2");
      svg.append(dot);
    }
    return svg;
  }

  function renderRooms() {
    const names = [...state.rooms.keys()].sort((a, b) =>
      a.localeCompare(b, "en", { numeric: true }));
    const rows = names.map((name) => {
      const room = state.rooms.get(name), s = room.last || {};
      const open = Array.isArray(s.open_incidents) ? s.open_incidents.length : 0;
      const st = s.live === false ? "ended" : s.silent ? "silent" : s.live ? "live" : "—";
      const nowV = room.viewers[room.viewers.length - 1], nowG = room.gmv[room.gmv.length - 1];
      return el("tr", { "data-stream": name, class: open ? "has-open" : null },
        el("th", { scope: "row" }, name),
        el("td", { class: `state ${st}` }, st),
        el("td", { class: "open" }, open ? String(open) : ""),
        el("td", {}, sparkline(room.viewers, `${name} viewers, now ${fmtNum(nowV)}`),
           el("span", { class: "val" }, fmtNum(nowV))),
        el("td", {}, sparkline(room.gmv, `${name} GMV per minute, now ${fmtNum(nowG)}`),
           el("span", { class: "val" }, fmtNum(nowG))));
    });
    $("rooms").tBodies[0].replaceChildren(...rows);
    $("rooms-note").textContent = state.roomsError
      ? `room data unavailable: ${state.roomsError}`
      : `${names.length} rooms · viewers · GMV per minute, last ~5 min`;
  }

  /* ---- status line ----------------------------------------------------------------------- */
  function renderStatus() {
    let conn;
    if (state.connected) conn = "● connected";
    else if (state.retryIn) {     // said once per attempt, not counted down: it is read aloud
      conn = `○ reconnecting in ${state.retryIn} s (attempt ${state.attempt}${
        state.closeReason ? ", " + state.closeReason : ""})`;
    } else conn = "○ connecting…";
    const open = state.incidents.size;
    const n = (k, word) => `${k} ${word}${k === 1 ? "" : "s"}`;
    $("status").textContent = `${conn} · ${n(state.events, "event")} seen · ` +
      `${n(open, "open incident")}` +
      (state.lastId ? ` · last event ${state.lastId}` : "");
  }

  function start() {
    $("sound").addEventListener("click", toggleSound);
    $("banner-close").addEventListener("click", () => {
      state.bannerHidden = true;
      renderBanner();
    });
    renderTeams();
    renderStatus();
    connect();
    poll();
    pollReview();
  }

  window.streamwatchPage = state;   // for a curious operator's console and the browser test
  document.addEventListener("DOMContentLoaded", start);
})();
