// The page has three panes, as Slack's sidebar does: the channel, the DM with the app, and the app's Home tab.
const APP = "kern";  // the app's display name (manifests/)
const PANES = ["channel", "dm", "home"];
const state = {
  user: localStorage.getItem("kern-dev-user") || "U1",
  pane: PANES.includes(localStorage.getItem("kern-dev-pane")) ? localStorage.getItem("kern-dev-pane") : "channel",
  data: null, selects: {}, emoji: {},
};

// ----- surfaces --------------------------------------------------------------------------------------
// A surface is where blocks are shown: a message or the Home tab. It says where a click goes and keys the
// selects' state (a message's ts, or "home"), as Slack sends a message's or a view's state with a click.
// `chosen`: for a select, an overflow menu or a date, what was chosen (Slack sends it in the action).
function messageSurface(m) {
  return { key: m.ts, click: (e, chosen) => post("/ui/click", { ts: m.ts, action_id: e.action_id, state: state.selects[m.ts] || {}, chosen }) };
}

const homeSurface = {
  key: "home",
  click: (e, chosen) => post("/ui/home_click", { action_id: e.action_id, value: e.value, state: state.selects.home || {}, chosen }),
};

const modalSurface = { key: "modal", click: () => {} };  // a modal's own buttons: none that kern-bot sends

// ----- messages --------------------------------------------------------------------------------------
function clock(at) {
  return at ? new Date(at * 1000).toLocaleTimeString([], { hour: "numeric", minute: "2-digit" }) : "";
}

// A message from the app (its name and the APP badge), from a person (`author`: typed in the composer), or
// Slackbot's (an unknown slash command).
function renderMessage(m, small = false) {
  const box = el("div", { class: small ? "msg small" : "msg" });
  if (m.ts) box.dataset.ts = m.ts.replace(".", "");  // as a permalink names it
  const person = m.author && m.author !== "Slackbot";
  box.append(el("div", { class: person ? "avatar person" : "avatar" }, person ? esc(m.author.slice(0, 2)) : m.author ? "s" : "k"));
  const body = el("div");
  const who = person ? `<span class="who">${esc(m.author)}</span>` : `<span class="who">${m.author ? "Slackbot" : APP}</span><span class="badge">${m.author ? "BOT" : "APP"}</span>`;
  body.append(el("div", {}, `${who}<span class="time">${clock(m.at)}</span>` + (m.edited ? " <span class='edited'>(edited)</span>" : "")));
  body.append(renderBlocks(blocksOf(m), messageSurface(m)));
  if (m.files && m.files.length) body.append(el("div", { class: "files" }, m.files.map((f) => `📎 ${esc(f)}`).join("<br>")));
  box.append(body);
  return box;
}

// A message without blocks (a reminder, a hand-over notice) shows its text, as Slack shows it. A streamed
// answer shows its task cards, its text as it grows (a cursor while it streams), then any blocks it ended with.
const TASK_MARK = { pending: "○", in_progress: "◐", complete: "✓", error: "✕" };
function blocksOf(m) {
  if (!(m.tasks && m.tasks.length) && !m.streaming) {
    return m.blocks && m.blocks.length ? m.blocks : [{ type: "section", text: { type: "mrkdwn", text: m.text || "" } }];
  }
  const tasks = (m.tasks || []).map((t) => ({ type: "mrkdwn", text: `${TASK_MARK[t.status] || "○"} ${t.title}${t.output ? ` — ${t.output}` : ""}` }));
  const shown = tasks.length ? [{ type: "context", elements: tasks.slice(0, 10) }] : [];
  const text = (m.text || "") + (m.streaming ? " ▍" : "");
  if (text.trim()) shown.push({ type: "section", text: { type: "mrkdwn", text } });
  return [...shown, ...(m.blocks || [])];
}

function renderRejected(main) {
  for (const r of state.data.rejected) main.append(el("div", { class: "rejected" }, `Slack would reject <b>${esc(r.method)}</b>: ${esc(r.error)}<br>${(r.errors || []).map(esc).join("<br>")}`));
}

// A conversation (the channel, or the DM): its messages with their threads and this person's ephemeral
// messages there, in time order, as Slack shows them.
function renderConversation(main, messages, channel) {
  const following = main.scrollTop + main.clientHeight >= main.scrollHeight - 200, top = main.scrollTop;
  main.innerHTML = "";
  renderRejected(main);
  const mine = state.data.ephemeral.filter((e) => e.channel === channel);
  const items = [...messages.map((m) => ({ at: m.at, m })), ...mine.map((e) => ({ at: e.at || 0, e }))];
  items.sort((a, b) => a.at - b.at);
  for (const { m, e } of items) {
    if (e) {
      const box = renderMessage({ at: e.at, blocks: e.blocks, text: e.text, author: e.author });
      box.classList.add("ephemeral");
      box.lastChild.prepend(el("div", { class: "only" }, "👁 Only visible to you"));
      main.append(box);
      continue;
    }
    const box = renderMessage(m);
    if (m.assistant) box.lastChild.append(renderAssistant(m));
    if (m.replies.length) {
      const body = box.lastChild;
      body.append(el("div", { class: "replies" }, `${m.replies.length} ${m.replies.length === 1 ? "reply" : "replies"}`));
      const thread = el("div", { class: "thread" }); m.replies.forEach((r) => thread.append(renderMessage(r, true))); body.append(thread);
    }
    main.append(box);
  }
  main.scrollTop = following ? main.scrollHeight : top;  // like Slack: follow new messages
}

// An assistant thread (Slack's assistant pane) under its root: its title, its status, its suggested prompts
// (a click sends the prompt's message) and a box to write in it.
function renderAssistant(m) {
  const a = m.assistant, say = (text) => post("/ui/assistant_say", { ts: m.ts, text });
  const box = el("div", { class: "assistant" }, `<b>${esc(a.title || "New chat")}</b>` + (a.status ? ` <i class="status">${APP} ${esc(a.status)}</i>` : ""));
  const prompts = el("div", { class: "prompts" });
  a.prompts.forEach((p) => { const b = el("button", {}, esc(p.title)); b.onclick = () => say(p.message); prompts.append(b); });
  const input = el("input", { placeholder: "Reply in this chat", autocomplete: "off" });
  input.onkeydown = (e) => { if (e.key === "Enter" && input.value.trim()) { say(input.value.trim()); input.value = ""; } };
  box.append(prompts, input);
  return box;
}

// ----- the Home tab ----------------------------------------------------------------------------------
function renderHome(main) {
  const top = main.scrollTop;
  main.innerHTML = "";
  renderRejected(main);
  const box = el("div", { class: "home" });
  if (state.data.home) box.append(renderBlocks(state.data.home.blocks, homeSurface));
  else box.append(el("div", { class: "empty" }, "Opening the Home tab…"));
  main.append(box);
  main.scrollTop = top;
}

// ----- navigation ------------------------------------------------------------------------------------
function seenKey() { return `kern-dev-dm-seen:${state.user}`; }

function unreadInDm() {
  const seen = Number(localStorage.getItem(seenKey()) || 0);
  return state.data.dm.filter((m) => Number(m.ts) > seen && !m.author).length;  // the app's, not yours
}

function renderNav() {
  const dm = state.data.dm;
  if (state.pane === "dm" && dm.length) localStorage.setItem(seenKey(), dm[dm.length - 1].ts);  // read
  const unread = state.pane === "dm" ? 0 : unreadInDm();
  document.getElementById("unread").textContent = unread ? String(unread) : "";
  document.querySelectorAll("nav [data-pane]").forEach((item) => {
    item.classList.toggle("active", item.dataset.pane === state.pane);
    item.classList.toggle("unread", item.dataset.pane === "dm" && unread > 0);
  });
}

function renderTop() {
  const title = document.getElementById("title"), notice = state.data.notice ? ` · ${esc(state.data.notice)}` : "";
  if (state.pane === "channel") {
    const name = state.data.channels[0].name;
    title.innerHTML = `<h1># ${esc(name)}</h1><div class="topic">kern-bot dev: a local Slack on this machine${notice}</div>`;
    document.title = `kern-bot dev · #${name}`;
  } else {
    title.innerHTML = `<div class="avatar">k</div><h1>${APP}</h1>`;
    const tabs = el("div", { class: "tabs", role: "tablist" });
    for (const [pane, label] of [["home", "Home"], ["dm", "Messages"]]) {
      const tab = el("button", { class: pane === state.pane ? "tab active" : "tab", role: "tab", "aria-selected": String(pane === state.pane) }, label);
      tab.onclick = () => select(pane);
      tabs.append(tab);
    }
    title.append(tabs);
    document.title = `kern-bot dev · ${APP} (${state.pane === "home" ? "Home" : "Messages"})`;
  }
  const composer = document.getElementById("composer");
  document.getElementById("footer").hidden = state.pane === "home";  // a Home tab has no composer
  composer.placeholder = state.pane === "dm"
    ? `Message ${APP}   (/kern list · /kern help)`
    : `Message #${state.data.channels[0].name}   (/kern run deploy api · /kern run · /kern list · /kern help)`;
}

function render() {
  const data = state.data;
  PANES.forEach((pane) => (document.getElementById(pane).hidden = pane !== state.pane));
  renderNav();
  renderTop();
  const problems = [];
  const attempt = (what, draw) => { try { draw(); } catch (error) { problems.push(`The page cannot draw ${what}: ${error.message}`); } };
  attempt("the channel", () => renderConversation(document.getElementById("channel"), data.messages, data.channels[0].id));
  attempt("the DM", () => renderConversation(document.getElementById("dm"), data.dm, data.dm_channel));
  attempt("the Home tab", () => renderHome(document.getElementById("home")));
  attempt("the modal", () => renderModal(data.view));
  if (problems.some((p) => p.includes("the modal"))) brokenModal(data.view, problems[problems.length - 1]);  // never an invisible modal
  const banner = document.getElementById("problem");
  banner.textContent = problems.join("\n"); banner.hidden = !problems.length;
}

// A modal the page could not draw at all: shown as such, with its Close (the person is never stuck).
function brokenModal(view, problem) {
  state.viewId = null;
  const modal = el("div", { class: "modal", role: "dialog" });
  modal.append(el("div", { class: "head" }, "<h2>Cannot draw this modal</h2>"), el("div", { class: "body" }, `<div class="cannot">${esc(problem)}</div>`));
  const foot = el("div", { class: "foot" }), close = el("button", { class: "big" }, "Close");
  close.onclick = () => post("/ui/close", { view_id: view.id });
  foot.append(close); modal.append(foot);
  const holder = document.getElementById("modal"), overlay = el("div", { class: "overlay" });
  overlay.append(modal); holder.innerHTML = ""; holder.append(overlay);
}

async function post(url, body) {
  const response = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ ...body, user: state.user }) });
  return response.json();
}

// Show `pane`; opening the Home tab is Slack's app_home_opened for the app, every time, as in Slack.
function select(pane) {
  state.pane = pane;
  localStorage.setItem("kern-dev-pane", pane);
  if (pane === "home") post("/ui/home", {});
  if (state.data) render();
}

// A permalink to a message shown here (the DM copy's link to the run card) goes to that message.
function followPermalink(event) {
  const link = event.target.closest("a[href*='/archives/']");
  const [, channel, stamp] = (link && link.getAttribute("href").match(/\/archives\/([A-Z0-9]+)\/p(\d+)/)) || [];
  if (!channel) return;
  event.preventDefault();
  select(channel === state.data.dm_channel ? "dm" : "channel");
  const target = document.getElementById(state.pane).querySelector(`[data-ts="${stamp}"]`);
  if (target) { target.scrollIntoView({ block: "center" }); target.classList.add("linked"); }
}

async function refresh() {
  state.data = await (await fetch(`/ui/state?user=${encodeURIComponent(state.user)}`)).json();
  const picker = document.getElementById("user");
  if (!picker.options.length) state.data.users.forEach((u) => picker.append(el("option", { value: u }, u)));
  picker.value = state.user;
  render();
}

document.getElementById("user").onchange = (e) => {
  state.user = e.target.value; localStorage.setItem("kern-dev-user", state.user); state.viewId = null; state.selects = {};
  if (state.pane === "home") post("/ui/home", {});  // their own Home
  refresh();
};
document.querySelectorAll("nav [data-pane]").forEach((item) => (item.onclick = () => select(item.dataset.pane)));
document.addEventListener("click", followPermalink);
document.getElementById("composer").onkeydown = async (e) => {
  if (e.key !== "Enter" || !e.target.value.trim()) return;
  const text = e.target.value.trim(); e.target.value = "";
  await post("/ui/command", { text, where: state.pane });
};
document.getElementById("shortcut").onclick = () => post("/ui/shortcut", {});
document.getElementById("assistant").onclick = async () => { await post("/ui/assistant", {}); select("dm"); };
fetch("/ui/emoji").then((r) => r.json()).then((map) => {
  state.emoji = map;
  new EventSource("/ui/events").onmessage = () => refresh();
  select(state.pane);
  refresh();
});
