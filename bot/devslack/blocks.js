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

function renderBlocks(blocks, surface) {
  const box = el("div");
  for (const block of blocks || []) {
    if (block.type === "header") box.append(el("div", { class: "block header" }, textOf(block.text)));
    else if (block.type === "divider") box.append(el("hr"));
    else if (block.type === "context") box.append(el("div", { class: "block context" }, (block.elements || []).map(textOf).join(" ")));
    else if (block.type === "section") {
      const sec = el("div", { class: block.accessory ? "block beside" : "block" }), text = el("div");
      if (block.text) text.append(el("div", {}, textOf(block.text)));
      if (block.fields) { const grid = el("div", { class: "fields" }); block.fields.forEach((f) => grid.append(el("div", {}, textOf(f)))); text.append(grid); }
      sec.append(text);
      const accessory = block.accessory && renderElement(block.accessory, block, surface);  // a button beside the text
      if (accessory) sec.append(accessory);
      box.append(sec);
    } else if (block.type === "actions") {
      const row = el("div", { class: "block actions" });
      for (const element of block.elements || []) { const node = renderElement(element, block, surface); if (node) row.append(node); }
      box.append(row);
    }
  }
  return box;
}

function renderElement(element, block, surface) {
  if (element.type === "button") {
    const b = el("button", { class: element.style || "" }, textOf(element.text));
    b.onclick = () => {
      if (element.confirm && !window.confirm(`${element.confirm.title.text}\n\n${element.confirm.text.text}`)) return;
      surface.click(element);
    };
    return b;
  }
  if (element.type !== "static_select" && element.type !== "multi_static_select") return null;
  const multiple = element.type === "multi_static_select";
  const sel = el("select", multiple ? { multiple: "", size: "4", class: "menu" } : { class: "menu" });
  if (!multiple) sel.append(el("option", { value: "" }, esc(element.placeholder ? element.placeholder.text : "Choose")));
  const kept = ((state.selects[surface.key] || {})[block.block_id] || {})[element.action_id] || {};  // chosen before a redraw
  const chosen = (kept.selected_options || [kept.selected_option]).filter(Boolean).map((o) => o.value);
  options(element).forEach((o) => { const opt = el("option", { value: o.value }, esc(o.text.text)); opt.selected = chosen.includes(o.value); sel.append(opt); });
  sel.onchange = () => {
    const picked = [...sel.selectedOptions].filter((o) => o.value).map((o) => ({ value: o.value }));
    state.selects[surface.key] = state.selects[surface.key] || {};
    state.selects[surface.key][block.block_id] = { [element.action_id]: multiple
      ? { type: element.type, selected_options: picked } : { type: element.type, selected_option: picked[0] || null } };
  };
  return sel;
}

function inputFor(e, channels) {
  let input;
  if (e.type === "plain_text_input") {
    input = e.multiline ? el("textarea", { rows: "4" }) : el("input", { type: "text" });
    if (e.max_length) input.maxLength = e.max_length;
    if (e.initial_value !== undefined) input.value = e.initial_value;
  } else if (e.type === "number_input") {
    input = el("input", { type: "number", step: e.is_decimal_allowed ? "any" : "1" });
    if (e.min_value !== undefined) input.min = e.min_value;
    if (e.max_value !== undefined) input.max = e.max_value;
    if (e.initial_value !== undefined) input.value = e.initial_value;
  } else if (e.type === "static_select" || e.type === "multi_static_select" || e.type === "conversations_select") {
    const multiple = e.type === "multi_static_select";
    input = el("select", multiple ? { multiple: "", size: String(Math.min(6, options(e).length)) } : {});
    if (!multiple) input.append(el("option", { value: "" }, esc(e.placeholder ? e.placeholder.text : "Choose…")));
    const choices = e.type === "conversations_select" ? channels.map((c) => ({ value: c.id, text: { text: `# ${c.name}` } })) : options(e);
    choices.forEach((o) => input.append(el("option", { value: o.value }, emoji(esc(o.text.text)))));
    const initial = multiple ? (e.initial_options || []).map((o) => o.value) : [e.initial_option ? e.initial_option.value : e.initial_conversation];
    [...input.options].forEach((o) => { if (initial.includes(o.value)) o.selected = true; });
  } else if (e.type === "datepicker") {
    input = el("input", { type: "date" });
    if (e.initial_date) input.value = e.initial_date;
  } else if (e.type === "checkboxes") {
    input = el("div");
    const initial = (e.initial_options || []).map((o) => o.value);
    e.options.forEach((o) => {
      const row = el("label", { class: "check" });
      const box = el("input", { type: "checkbox", value: o.value });
      box.checked = initial.includes(o.value);
      row.append(box, el("span", {}, textOf(o.text)));
      input.append(row);
    });
  }
  input.dataset.type = e.type; input.dataset.action = e.action_id;
  return input;
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
  for (const block of view.blocks) {
    if (block.type !== "input") { body.append(renderBlocks([block], modalSurface)); continue; }
    const field = el("div", { class: "field", "data-block": block.block_id });
    field.append(el("label", {}, textOf(block.label) + (block.optional ? " <span class='opt'>(optional)</span>" : "")));
    const input = inputFor(block.element, state.data.channels || []);
    const clear = () => { field.classList.remove("invalid"); field.querySelector(".error").textContent = ""; };
    input.addEventListener("input", clear); input.addEventListener("change", clear);  // an edited field's error goes, as in Slack
    field.append(input);
    if (block.hint) field.append(el("div", { class: "hint" }, textOf(block.hint)));
    field.append(el("div", { class: "error" }));
    body.append(field);
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

function valueOf(input) {
  const type = input.dataset.type;
  if (type === "checkboxes") return { type, selected_options: [...input.querySelectorAll("input:checked")].map((b) => ({ value: b.value })) };
  if (type === "multi_static_select") return { type, selected_options: [...input.selectedOptions].map((o) => ({ value: o.value })) };
  if (type === "static_select") return { type, selected_option: input.value ? { value: input.value } : null };
  if (type === "conversations_select") return { type, selected_conversation: input.value || null };
  if (type === "datepicker") return { type, selected_date: input.value || null };
  return { type, value: input.value === "" ? null : input.value };
}

async function submitView(view) {
  const values = {};
  document.querySelectorAll("#modal [data-block]").forEach((field) => {
    const input = field.querySelector("[data-type]");
    values[field.dataset.block] = { [input.dataset.action]: valueOf(input) };
  });
  const answer = await post("/ui/submit", { view_id: view.id, values });
  document.querySelectorAll("#modal .error").forEach((e) => { e.textContent = ""; e.parentNode.classList.remove("invalid"); });
  for (const [blockId, message] of Object.entries(answer.errors || {})) {
    const field = document.querySelector(`#modal [data-block="${blockId}"]`);
    if (field) { field.querySelector(".error").textContent = message; field.classList.add("invalid"); }
  }
}
