// The review page. Corpus text (document text, ids, notes, evidence keys) only ever enters the
// page through textContent, value and createElement: never as markup.
'use strict';
(function () {
  const token = new URLSearchParams(location.search).get('token') || '';
  const $ = (id) => document.getElementById(id);
  const state = { pos: 0, total: 0, reviewer: null, fixed: false, doc: null, history: [], busy: false };

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  async function api(path, body) {
    const options = { headers: { 'X-Sluice-Token': token } };
    if (body !== undefined) {
      options.method = 'POST';
      options.headers['Content-Type'] = 'application/json';
      options.body = JSON.stringify(body);
    }
    const response = await fetch(path, options);
    const data = await response.json().catch(() => ({ error: response.statusText }));
    if (!response.ok) throw new Error(data.error || response.statusText);
    return data;
  }

  function say(text, isError) {
    const status = $('status');
    status.textContent = text;
    status.className = isError ? 'error' : '';
  }

  function selection() {
    const params = new URLSearchParams();
    params.set('pos', String(state.pos));
    if (state.reviewer) params.set('reviewer', state.reviewer);
    const fields = { reason: 'f-reason', category: 'f-category', min_score: 'f-min', max_score: 'f-max', source: 'f-source', status: 'f-status' };
    for (const [key, id] of Object.entries(fields)) {
      const value = $(id).value.trim();
      if (value !== '') params.set(key, value);
    }
    return params.toString();
  }

  let latest = 0;
  async function load() {
    // Only the answer to the latest request is shown (keys can outrun the server).
    const ticket = ++latest;
    document.body.dataset.state = 'loading';
    try {
      const page = await api('/api/doc?' + selection());
      if (ticket !== latest) return;
      if (page.total && page.position < state.pos) say('end of the selection');
      state.pos = page.position;
      state.total = page.total;
      render(page);
    } catch (e) {
      if (ticket !== latest) return;
      say('cannot load: ' + e.message, true);
    }
    document.body.dataset.state = 'ready';
  }

  function render(page) {
    const done = page.done, total = page.total;
    $('progress-bar').style.width = total ? (100 * done / total) + '%' : '0';
    $('progress-text').textContent = done + ' done / ' + (total - done) + ' left' +
      (total ? ' \u00b7 ' + (page.position + 1) + ' of ' + total : '') +
      (total !== page.queued ? ' (of ' + page.queued + ' queued)' : '');
    const doc = page.doc;
    state.doc = doc;
    $('empty').hidden = !!doc;
    const meta = $('meta'), parts = $('parts'), evidence = $('evidence'), decisions = $('decisions');
    for (const node of [meta, parts, evidence, decisions]) node.replaceChildren();
    document.body.dataset.shard = doc ? doc.shard : '';
    document.body.dataset.line = doc ? String(doc.line) : '';
    if (!doc) { $('mine').textContent = ''; return; }
    meta.append('id ', el('b', null, doc.id || '(none)'), ' \u00b7 ', el('span', null, doc.shard),
      ' line ' + doc.line + ' \u00b7 from ' + doc.source + '/' +
      (doc.score !== null && doc.score !== undefined ? ' \u00b7 score ' + doc.score.toFixed(3) : ''));
    if (!doc.readable) meta.append(el('div', null, 'the run\u2019s fields do not read this line: shown as it is'));
    for (const part of doc.parts) {
      const box = el('div', 'part');
      if (part.path || part.role) {
        const head = el('div', 'part-head');
        if (part.role) head.append(el('span', 'role', part.role), ' ');
        if (part.path) head.append(el('span', null, part.path));
        box.append(head);
      }
      const text = el('div', 'text');
      for (const segment of part.segments) {
        if (segment.marks.length) {
          const mark = el('mark', null, segment.text);
          mark.title = segment.marks.join(', ');
          text.append(mark);
        } else {
          text.append(document.createTextNode(segment.text));
        }
      }
      box.append(text);
      parts.append(box);
    }
    const mine = $('mine');
    mine.textContent = doc.mine ? 'you: ' + doc.mine : 'not decided by you';
    mine.className = doc.mine ? 'decided-' + doc.mine : '';
    for (const d of doc.decisions) {
      const item = el('li', 'decided-' + d.decision, d.reviewer + ': ' + d.decision + ' (' + d.at + ')');
      if (d.record_hash !== doc.record_hash) item.append(' \u2014 on an earlier record, not counted');
      if (d.note) item.append(el('div', 'muted', d.note));
      decisions.append(item);
    }
    if (doc.agreement === 'disagreed') decisions.append(el('li', 'outcome-drop', 'reviewers disagree: it stays in review'));
    if (!doc.decisions.length) decisions.append(el('li', 'muted', 'none yet'));
    renderEvidence(evidence, doc.record);
  }

  function scalar(value) {
    if (value === null || value === undefined) return '';
    if (typeof value === 'number') return Number.isInteger(value) ? String(value) : value.toFixed(4);
    return String(value);
  }

  function table(rows) {
    const columns = [];
    for (const row of rows) for (const key of Object.keys(row)) if (key !== 'spans' && !columns.includes(key)) columns.push(key);
    const t = el('table'), head = el('tr');
    for (const c of columns) head.append(el('th', null, c));
    t.append(head);
    for (const row of rows) {
      const tr = el('tr');
      for (const c of columns) {
        const v = row[c];
        tr.append(el('td', null, typeof v === 'object' && v !== null ? JSON.stringify(v) : scalar(v)));
      }
      t.append(tr);
    }
    return t;
  }

  function renderEvidence(box, record) {
    if (!record) { box.append(el('p', 'muted', 'no audit record: the cascade found nothing in it')); return; }
    const reasons = record.reasons.map((r) => r.stage + (r.rule ? '/' + r.rule : '') + ' \u2192 ' + r.action);
    box.append(el('p', null, 'decision ' + record.decision + (record.escalated ? ', escalated' : '') +
      (reasons.length ? ' \u00b7 reasons: ' + reasons.join(', ') : '')));
    for (const stage of record.stages) {
      const div = el('div', 'stage');
      div.append(el('div', 'stage-head outcome-' + stage.outcome, stage.stage + ' (' + stage.type + '): ' + stage.outcome));
      if (typeof stage.score === 'number') {
        const bar = el('div', 'score'), fill = el('div', 'score-fill');
        fill.style.width = (100 * stage.score) + '%';
        bar.append(fill);
        for (const [key, cls, label] of [['review_threshold', 'threshold-review', 'review'], ['drop_threshold', 'threshold-drop', 'drop']]) {
          if (typeof stage[key] === 'number') {
            const line = el('div', 'threshold ' + cls);
            line.style.left = (100 * stage[key]) + '%';
            line.append(el('span', null, label + ' ' + stage[key]));
            bar.append(line);
          }
        }
        div.append(el('div', null, 'score ' + stage.score.toFixed(4)), bar);
      }
      const plain = [];
      for (const [key, value] of Object.entries(stage)) {
        if (['stage', 'type', 'outcome', 'spans', 'score'].includes(key)) continue;
        if (Array.isArray(value)) {
          if (!value.length) continue;
          if (typeof value[0] === 'object' && value[0] !== null) { div.append(el('div', null, key), table(value)); }
          else plain.push(key + ': ' + value.map(scalar).join(', '));
        } else if (value && typeof value === 'object') {
          plain.push(key + ': ' + Object.entries(value).map(([k, v]) => k + ' ' + scalar(v)).join(', '));
        } else {
          plain.push(key + ': ' + scalar(value));
        }
      }
      for (const line of plain) div.append(el('div', null, line));
      box.append(div);
    }
  }

  async function decide(decision, doc) {
    doc = doc || state.doc;
    if (!doc || state.busy) return;
    if (!state.reviewer) { say('give your name first', true); $('reviewer-name').focus(); return; }
    state.busy = true;
    try {
      const note = decision === 'undo' ? '' : $('note').value;
      const saved = await api('/api/decide', {
        reviewer: state.reviewer, shard: doc.shard, line: doc.line,
        record_hash: doc.record_hash, decision: decision, note: note,
      });
      if (decision !== 'undo') {
        $('note').value = '';
        state.history.push({ shard: doc.shard, line: doc.line, record_hash: doc.record_hash, pos: state.pos });
      }
      say(decision + ' saved (' + saved.citation + ')');
      document.body.dataset.saved = String(Number(document.body.dataset.saved || 0) + 1);
      // In "not done by me" the decided document leaves the selection: the next one is at pos.
      if (decision !== 'undo' && $('f-status').value !== 'undecided') state.pos += 1;
    } catch (e) {
      say('not saved: ' + e.message, true);
    }
    state.busy = false;
    await load();
  }

  async function undo() {
    const last = state.history.pop();
    if (!last) {
      if (state.doc && state.doc.mine) return decide('undo');
      say('nothing to undo');
      return;
    }
    state.pos = last.pos;
    await decide('undo', last);
  }

  function move(step) {
    const next = Math.max(0, Math.min(state.total - 1, state.pos + step));
    if (next === state.pos) return;
    state.pos = next;
    load();
  }

  async function showDisagreements() {
    const list = $('disagreement-list');
    list.replaceChildren();
    $('disagreements').hidden = false;
    const items = await api('/api/disagreements').catch((e) => { say(e.message, true); return []; });
    if (!items.length) list.append(el('li', 'muted', 'none'));
    items.forEach((item, k) => {
      const names = item.decisions.map((d) => d.reviewer + ' ' + d.decision).join(', ');
      const li = el('li', null, item.shard + ' line ' + item.line + ': ' + names);
      li.addEventListener('click', () => { $('f-status').value = 'disagreed'; state.pos = k; load(); });
      list.append(li);
    });
  }

  function setReviewer(name) {
    state.reviewer = name;
    $('who').textContent = name ? 'reviewing as ' + name : '';
    $('name-form').hidden = !!name || state.fixed;
  }

  function onKey(event) {
    const target = event.target;
    const typing = target && (target.tagName === 'TEXTAREA' || target.tagName === 'INPUT' || target.tagName === 'SELECT');
    if (typing) {
      if (event.key === 'Escape' || (event.key === 'Enter' && target.id === 'note' && !event.shiftKey)) {
        event.preventDefault();
        target.blur();
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const actions = {
      k: () => decide('keep'), d: () => decide('drop'), s: () => decide('skip'), u: () => undo(),
      n: () => $('note').focus(), j: () => move(1), ArrowRight: () => move(1), h: () => move(-1),
      ArrowLeft: () => move(-1), '?': () => { $('help').open = !$('help').open; },
    };
    const action = actions[event.key];
    if (action) { event.preventDefault(); action(); }
  }

  function fill(select, entries) {
    for (const [key, count] of entries) {
      const option = el('option', null, key + ' (' + count + ')');
      option.value = key;
      select.append(option);
    }
  }

  async function start() {
    let info;
    try { info = await api('/api/info'); } catch (e) { say('cannot load: ' + e.message, true); return; }
    $('output').textContent = info.output;
    fill($('f-reason'), info.reasons);
    fill($('f-category'), info.categories);
    state.fixed = !!info.reviewer;
    setReviewer(info.reviewer || sessionStorage.getItem('sluice-reviewer'));
    $('name-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const name = $('reviewer-name').value.trim();
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) { say('a name is letters, digits, . _ -', true); return; }
      sessionStorage.setItem('sluice-reviewer', name);
      setReviewer(name);
      $('reviewer-name').blur();
      load();
    });
    for (const id of ['f-reason', 'f-category', 'f-min', 'f-max', 'f-source', 'f-status']) {
      $(id).addEventListener('change', () => { state.pos = 0; load(); });
    }
    for (const button of document.querySelectorAll('button[data-decision]')) {
      button.addEventListener('click', () => decide(button.dataset.decision));
    }
    $('undo').addEventListener('click', undo);
    $('prev').addEventListener('click', () => move(-1));
    $('next').addEventListener('click', () => move(1));
    $('show-disagreements').addEventListener('click', showDisagreements);
    document.addEventListener('keydown', onKey);
    await load();
  }

  document.addEventListener('DOMContentLoaded', start);
})();
