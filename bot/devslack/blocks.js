// How Slack draws things, for the dev page (page.js): mrkdwn, emoji, Block Kit blocks and elements, modals.
// Uses page.js's `state` (emoji map, channels, chosen selects) and `post` when called.

function esc(text) {
  return String(text).replace(/&(?!(amp|lt|gt);)/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

// :shortcode: to Unicode as Slack shows it; unknown ones stay as text.
function emoji(s) {
  return s.replace(/:([a-z0-9_+-]+):/g, (m, name) => state.emoji[name] || m);
}

// Slack mrkdwn to HTML: Slack's own tokens first, then every other angle bracket escaped, then formatting.
function mrkdwn(text) {
  const tokens = [];
  let s = String(text).replace(/<(@[UW][A-Z0-9]+|#[CGD][A-Z0-9]+(\|[^>]*)?|!subteam\^[A-Z0-9]+|![^>|]+\|[^>]+|https?:[^>|]+(\|[^>]+)?)>/g, (m, inner) => {
    let html;
    if (inner.startsWith("@")) html = `<span class="mention">@${esc(inner.slice(1))}</span>`;
    else if (inner.startsWith("#")) html = `<span class="mention">#${esc(channelName(inner.slice(1)))}</span>`;
    else if (inner.startsWith("!subteam")) html = `<span class="mention">@group</span>`;
    else if (inner.startsWith("!date")) {
      const when = new Date(Number(inner.split("^")[1]) * 1000);
      html = isNaN(when) ? esc(inner.split("|").slice(1).join("|")) : esc(when.toLocaleString([], { dateStyle: "medium", timeStyle: "short" }));
    }
    else { const [url, label] = inner.split("|"); html = `<a href="${esc(url)}">${esc(label || url)}</a>`; }
    tokens.push(html);
    return `\u0000${tokens.length - 1}\u0000`;
  });
  s = esc(s);
  // code is shown as written: set it aside before formatting, like Slack
  const keep = (html) => { tokens.push(html); return `\u0000${tokens.length - 1}\u0000`; };
  s = s.replace(/```([\s\S]*?)```/g, (m, code) => keep(`<pre>${code}</pre>`));
  s = s.replace(/`([^`\n]+)`/g, (m, code) => keep(`<code>${code}</code>`));
  s = s.replace(/(^|\n)&gt; ?([^\n]*)/g, "$1<blockquote>$2</blockquote>");
  s = s.replace(/(^|[\s(])\*([^*\n]+)\*/g, "$1<b>$2</b>").replace(/(^|[\s(])_([^_\n]+)_/g, "$1<i>$2</i>");
  s = s.replace(/(^|[\s(])~([^~\n]+)~/g, "$1<s>$2</s>").replace(/\n/g, "<br>");
  s = emoji(s);
  return s.replace(/\u0000(\d+)\u0000/g, (m, i) => tokens[Number(i)]);
}

function channelName(ref) {
  const [id, label] = ref.split("|");
  const known = ((state.data && state.data.channels) || []).find((c) => c.id === id);
  return label || (known ? known.name : id);
}

function textOf(obj) {
  if (!obj) return "";
  return obj.type === "mrkdwn" ? mrkdwn(obj.text) : (obj.emoji === false ? esc(obj.text) : emoji(esc(obj.text)));
}

function el(tag, attrs = {}, html = "") {
  const node = document.createElement(tag);
  Object.entries(attrs).forEach(([k, v]) => (k === "class" ? (node.className = v) : node.setAttribute(k, v)));
  if (html) node.innerHTML = html;
  return node;
}

function options(element) {
  return element.options || (element.option_groups || []).flatMap((g) => g.options);
}

// A block the page cannot draw is shown as what it is, never left half drawn (nor a modal left invisible).
function drawFailure(what, error) {
  return el("div", { class: "block cannot" }, `The page cannot draw ${esc(what)}: ${esc(error && error.message ? error.message : error)}`);
}

function renderBlocks(blocks, surface) {
  const box = el("div");
  for (const block of blocks || []) {
    try { const node = renderBlock(block, surface); if (node) box.append(node); }
    catch (error) { box.append(drawFailure(`a ${block && block.type} block`, error)); }
  }
  return box;
}

function renderBlock(block, surface) {
  if (block.type === "header") return el("div", { class: "block header" }, textOf(block.text));
  if (block.type === "divider") return el("hr");
  if (block.type === "context") {
    const row = el("div", { class: "block context" });
    (block.elements || []).forEach((e) => row.append(e.type === "image" ? imageOf(e, "context-image") : el("span", {}, textOf(e) + " ")));
    return row;
  }
  if (block.type === "section") {
    const sec = el("div", { class: block.accessory ? "block beside" : "block" }), text = el("div");
    if (block.text) text.append(el("div", {}, textOf(block.text)));
    if (block.fields) { const grid = el("div", { class: "fields" }); block.fields.forEach((f) => grid.append(el("div", {}, textOf(f)))); text.append(grid); }
    sec.append(text);
    if (block.accessory) sec.append(renderElement(block.accessory, block, surface));  // beside the text
    return sec;
  }
  if (block.type === "actions") {
    const row = el("div", { class: "block actions" });
    for (const element of block.elements || []) row.append(renderElement(element, block, surface));
    return row;
  }
  if (block.type === "image") {
    const box = el("div", { class: "block" });
    if (block.title) box.append(el("div", { class: "context" }, textOf(block.title)));
    box.append(imageOf(block, "image"));
    return box;
  }
  if (block.type === "markdown") return el("div", { class: "block" }, mrkdwn(block.text));
  if (block.type === "rich_text") return el("div", { class: "block" }, richText(block));
  if (block.type === "input") return inputField(block, surface);  // a Home tab may hold inputs too
  throw new Error(`unknown block type ${block.type}`);
}

function imageOf(e, cls) {
  const img = el("img", { class: cls, alt: e.alt_text || "" });
  img.src = e.image_url || "";
  return img;
}

// rich_text: its sections, lists, quotes and preformatted parts, with their styled text.
function richText(obj) {
  const inline = (e) => {
    if (e.type === "text") {
      let html = esc(e.text).replace(/\n/g, "<br>"); const st = e.style || {};
      if (st.code) html = `<code>${html}</code>`; if (st.bold) html = `<b>${html}</b>`;
      if (st.italic) html = `<i>${html}</i>`; if (st.strike) html = `<s>${html}</s>`;
      return html;
    }
    if (e.type === "link") return `<a href="${esc(e.url)}">${esc(e.text || e.url)}</a>`;
    if (e.type === "user") return `<span class="mention">@${esc(e.user_id)}</span>`;
    if (e.type === "channel") return `<span class="mention">#${esc(channelName(e.channel_id))}</span>`;
    if (e.type === "emoji") return emoji(`:${e.name}:`);
    return "";
  };
  return (obj.elements || []).map((part) => {
    const inner = (part.elements || []).map((e) => (e.type && e.type.startsWith("rich_text_") ? richText(e) : inline(e))).join("");
    if (part.type === "rich_text_preformatted") return `<pre>${inner}</pre>`;
    if (part.type === "rich_text_quote") return `<blockquote>${inner}</blockquote>`;
    if (part.type === "rich_text_list") {
      const tag = part.style === "ordered" ? "ol" : "ul";
      return `<${tag}>${(part.elements || []).map((item) => `<li>${richText({ elements: [item] })}</li>`).join("")}</${tag}>`;
    }
    return inner;
  }).join("");
}

// ----- elements ------------------------------------------------------------------------------------
// Every element Slack draws in messages, Home tabs and modals. A field (anything but a button, an
// overflow menu or an image) is drawn by `inputFor` and read back by `valueOf` as Slack's view state:
// the same shape in a modal's submission and in a message's or Home's state sent with a click.

const SELECTS = ["static_select", "multi_static_select", "external_select", "multi_external_select",
  "users_select", "multi_users_select", "conversations_select", "multi_conversations_select", "channels_select", "multi_channels_select"];

function renderElement(element, block, surface) {
  if (element.type === "button") {
    const b = el("button", { class: element.style || "" }, textOf(element.text));
    b.onclick = () => {
      if (element.confirm && !window.confirm(`${element.confirm.title.text}\n\n${element.confirm.text.text}`)) return;
      surface.click(element);
    };
    return b;
  }
  if (element.type === "overflow") {
    const menu = el("select", { class: "menu overflow", "aria-label": "More actions" });
    menu.append(el("option", { value: "" }, "⋯"));
    element.options.forEach((o) => menu.append(el("option", { value: o.value }, emoji(esc(o.text.text)))));
    menu.onchange = () => {
      const option = element.options.find((o) => o.value === menu.value); menu.value = "";
      if (option) surface.click(element, { selected_option: option });
    };
    return menu;
  }
  if (element.type === "image") return imageOf(element, "context-image");
  const input = inputFor(element);
  if (input.tagName === "SELECT" || input.tagName === "INPUT") input.classList.add("menu");  // drawn as a message's menu
  const keep = () => {  // the surface's state, as Slack keeps it and sends it with the next click
    const value = valueOf(input);
    state.selects[surface.key] = state.selects[surface.key] || {};
    state.selects[surface.key][block.block_id] = { ...(state.selects[surface.key][block.block_id] || {}), [element.action_id]: value };
    return value;
  };
  const kept = ((state.selects[surface.key] || {})[block.block_id] || {})[element.action_id];
  if (kept) setValue(input, kept);  // chosen before a redraw
  // Slack sends a block_actions for a change of an element outside a modal's input blocks (a select in a
  // message, a date on a Home tab): what was chosen, with the surface's state.
  input.addEventListener("change", () => { const value = keep(); const { type, ...chosen } = value; surface.click(element, chosen); });
  return input;
}

function people() { return (state.data && state.data.users) || []; }

// The conversations a conversations_select offers: the channel, and the person's DM with the app unless
// the element's filter leaves DMs out.
function conversations(e) {
  const channels = ((state.data && state.data.channels) || []).map((c) => ({ id: c.id, name: `# ${c.name}` }));
  const include = (e.filter || {}).include;
  if (state.data && state.data.dm_channel && (!include || include.includes("im"))) channels.push({ id: state.data.dm_channel, name: "kern (DM)" });
  return channels;
}

function choicesOf(e) {
  const kind = e.type.replace(/^multi_/, "");
  if (kind === "users_select") return people().map((u) => ({ value: u, label: `@${u}` }));
  if (kind === "conversations_select") return conversations(e).map((c) => ({ value: c.id, label: c.name }));
  if (kind === "channels_select") return ((state.data && state.data.channels) || []).map((c) => ({ value: c.id, label: `# ${c.name}` }));
  if (kind === "external_select") return (e.initial_option ? [e.initial_option] : e.initial_options || []).map((o) => ({ value: o.value, label: o.text.text, option: o }));
  return options(e).map((o) => ({ value: o.value, label: o.text.text, option: o }));
}

function initialOf(e) {
  const single = { static_select: e.initial_option && e.initial_option.value, external_select: e.initial_option && e.initial_option.value,
    users_select: e.initial_user, conversations_select: e.initial_conversation, channels_select: e.initial_channel }[e.type];
  if (single) return [single];
  if (e.type === "multi_static_select" || e.type === "multi_external_select") return (e.initial_options || []).map((o) => o.value);
  return e.initial_users || e.initial_conversations || e.initial_channels || [];
}

function inputFor(e) {
  let input;
  if (e.type === "plain_text_input" || e.type === "email_text_input" || e.type === "url_text_input" || e.type === "rich_text_input") {
    const multiline = e.multiline || e.type === "rich_text_input";
    input = multiline ? el("textarea", { rows: "4" }) : el("input", { type: { email_text_input: "email", url_text_input: "url" }[e.type] || "text" });
    if (e.max_length) input.maxLength = e.max_length;
    const initial = e.type === "rich_text_input" ? (e.initial_value ? richPlain(e.initial_value) : undefined) : e.initial_value;
    if (initial !== undefined) input.value = initial;
  } else if (e.type === "number_input") {
    input = el("input", { type: "text", inputmode: e.is_decimal_allowed ? "decimal" : "numeric" });  // as Slack: checked on submit
    if (e.initial_value !== undefined) input.value = e.initial_value;
  } else if (SELECTS.includes(e.type)) {
    const multiple = e.type.startsWith("multi_"), choices = choicesOf(e);
    input = el("select", multiple ? { multiple: "", size: String(Math.max(2, Math.min(6, choices.length))) } : {});
    if (!multiple) input.append(el("option", { value: "" }, esc(e.placeholder ? e.placeholder.text : "Choose…")));
    choices.forEach((c) => input.append(el("option", { value: c.value }, emoji(esc(c.label)))));
    const initial = initialOf(e);
    [...input.options].forEach((o) => { if (o.value && initial.includes(o.value)) o.selected = true; });
    input._choices = choices;
  } else if (e.type === "datepicker") {
    input = el("input", { type: "date" });
    if (e.initial_date) input.value = e.initial_date;
  } else if (e.type === "timepicker") {
    input = el("input", { type: "time" });
    if (e.initial_time) input.value = e.initial_time;
  } else if (e.type === "datetimepicker") {
    input = el("input", { type: "datetime-local" });
    if (e.initial_date_time) input.value = localDateTime(e.initial_date_time);
  } else if (e.type === "checkboxes" || e.type === "radio_buttons") {
    input = el("div", { class: "choices", role: e.type === "radio_buttons" ? "radiogroup" : "group" });
    const initial = e.type === "checkboxes" ? (e.initial_options || []).map((o) => o.value) : [e.initial_option && e.initial_option.value];
    const group = `g${Math.random().toString(36).slice(2)}`;
    e.options.forEach((o) => {
      const row = el("label", { class: "check" });
      const box = el("input", { type: e.type === "checkboxes" ? "checkbox" : "radio", value: o.value, name: group });
      box.checked = initial.includes(o.value);
      row.append(box, el("span", {}, textOf(o.text) + (o.description ? `<div class="hint">${textOf(o.description)}</div>` : "")));
      input.append(row);
    });
  } else {
    throw new Error(`unknown element type ${e.type}`);
  }
  input.dataset.type = e.type; input.dataset.action = e.action_id;
  input._element = e;
  return input;
}

function localDateTime(seconds) {
  const d = new Date(seconds * 1000), pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function richPlain(value) {
  const walk = (e) => (e.text || "") + (e.elements || []).map(walk).join("");
  return walk(value);
}

function optionFor(input, value) {  // the whole option object, as Slack sends it
  const e = input._element;
  return (e.options || options(e) || []).find((o) => o.value === value) || { value };
}

function valueOf(input) {
  const type = input.dataset.type, kind = type.replace(/^multi_/, ""), multiple = type.startsWith("multi_");
  if (type === "checkboxes") return { type, selected_options: [...input.querySelectorAll("input:checked")].map((b) => optionFor(input, b.value)) };
  if (type === "radio_buttons") { const b = input.querySelector("input:checked"); return { type, selected_option: b ? optionFor(input, b.value) : null }; }
  if (SELECTS.includes(type)) {
    const picked = [...input.selectedOptions].map((o) => o.value).filter(Boolean);
    if (kind === "static_select" || kind === "external_select") {
      const chosen = picked.map((v) => (input._choices.find((c) => c.value === v) || {}).option || { value: v });
      return multiple ? { type, selected_options: chosen } : { type, selected_option: chosen[0] || null };
    }
    const key = { users_select: "user", conversations_select: "conversation", channels_select: "channel" }[kind];
    return multiple ? { type, [`selected_${key}s`]: picked } : { type, [`selected_${key}`]: picked[0] || null };
  }
  if (type === "datepicker") return { type, selected_date: input.value || null };
  if (type === "timepicker") return { type, selected_time: input.value || null };
  if (type === "datetimepicker") return { type, selected_date_time: input.value ? Math.floor(new Date(input.value).getTime() / 1000) : null };
  if (type === "rich_text_input") {
    const text = input.value;
    return { type, rich_text_value: { type: "rich_text", elements: text ? [{ type: "rich_text_section", elements: [{ type: "text", text }] }] : [] } };
  }
  return { type, value: input.value === "" ? null : input.value };
}

function setValue(input, value) {  // a kept state drawn again (the inverse of valueOf)
  const type = input.dataset.type;
  const chosen = [value.selected_option && value.selected_option.value, ...(value.selected_options || []).map((o) => o.value),
    value.selected_user, value.selected_conversation, value.selected_channel,
    ...(value.selected_users || []), ...(value.selected_conversations || []), ...(value.selected_channels || [])].filter(Boolean);
  if (type === "checkboxes" || type === "radio_buttons") input.querySelectorAll("input").forEach((b) => (b.checked = chosen.includes(b.value)));
  else if (SELECTS.includes(type)) [...input.options].forEach((o) => (o.selected = chosen.includes(o.value)));
  else if (type === "datepicker") input.value = value.selected_date || "";
  else if (type === "timepicker") input.value = value.selected_time || "";
  else if (value.value !== undefined && value.value !== null) input.value = value.value;
}

// ----- modals ------------------------------------------------------------------------------------
function inputField(block, surface) {
  const field = el("div", { class: "field", "data-block": block.block_id });
  field.append(el("label", {}, textOf(block.label) + (block.optional ? " <span class='opt'>(optional)</span>" : "")));
  const input = inputFor(block.element);
  const clear = () => { field.classList.remove("invalid"); field.querySelector(".error").textContent = ""; };
  input.addEventListener("input", clear); input.addEventListener("change", clear);  // an edited field's error goes, as in Slack
  if (block.dispatch_action && surface !== modalSurface) input.addEventListener("change", () => surface.click(block.element, valueOf(input)));
  field.append(input);
  if (block.hint) field.append(el("div", { class: "hint" }, textOf(block.hint)));
  field.append(el("div", { class: "error" }));
  return field;
}

function renderModal(view) {
  const holder = document.getElementById("modal");
  if (!view) { holder.innerHTML = ""; state.viewId = null; return; }
  if (state.viewId === view.id && state.viewHash === view.hash) return;  // keep what the person typed
  state.viewId = view.id; state.viewHash = view.hash;
  const modal = el("div", { class: "modal", role: "dialog" });
  const head = el("div", { class: "head" });
  head.append(el("div", { class: "avatar" }, "k"), el("h2", {}, textOf(view.title)));
  const x = el("button", { class: "x", "aria-label": "Close" }, "✕");
  x.onclick = () => post("/ui/close", { view_id: view.id });
  head.append(x);
  modal.append(head);
  const body = el("div", { class: "body" });
  for (const block of view.blocks || []) {
    try { body.append(block.type === "input" ? inputField(block, modalSurface) : renderBlock(block, modalSurface)); }
    catch (error) { body.append(drawFailure(`a ${block && block.type} block`, error)); }  // the modal still shows, and closes
  }
  modal.append(body);
  const foot = el("div", { class: "foot" });
  const close = el("button", { class: "big" }, esc(view.close ? view.close.text : "Close"));
  close.onclick = () => post("/ui/close", { view_id: view.id });
  foot.append(close);
  if (view.submit) { const submit = el("button", { class: "primary big" }, esc(view.submit.text)); submit.onclick = () => submitView(view); foot.append(submit); }
  modal.append(foot);
  holder.innerHTML = ""; const overlay = el("div", { class: "overlay" }); overlay.append(modal); holder.append(overlay);
}

async function submitView(view) {
  const values = {};
  document.querySelectorAll("#modal [data-block]").forEach((field) => {
    const input = field.querySelector("[data-type]");
    if (input) values[field.dataset.block] = { [input.dataset.action]: valueOf(input) };
  });
  const answer = await post("/ui/submit", { view_id: view.id, values });
  document.querySelectorAll("#modal .error").forEach((e) => { e.textContent = ""; e.parentNode.classList.remove("invalid"); });
  for (const [blockId, message] of Object.entries(answer.errors || {})) {
    const field = document.querySelector(`#modal [data-block="${blockId}"]`);
    if (field) { field.querySelector(".error").textContent = message; field.classList.add("invalid"); }
  }
}
