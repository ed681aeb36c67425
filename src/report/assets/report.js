// Draws, pages, filters and searches the change rows of drift.html.
//
// The rows come from the JSON block `#report-data` (layout: `write_data` in src/report/html.rs)
// and reach the page only as text (createElement, textContent): no value from the report is
// ever parsed as HTML. One page of rows (100 by default) is in the DOM at a time, so the page
// opens and filters quickly at a million VMs; the lowercase texts the search box looks in are
// built once, while the browser is idle or at the first keystroke.
(function () {
  'use strict';
  var dataBlock = document.getElementById('report-data');
  if (!dataBlock) return;
  var D = JSON.parse(dataBlock.textContent);

  // The relationship rows past the first ones in the HTML, drawn when asked for.
  var relsButton = document.getElementById('rels-all');
  if (relsButton) {
    relsButton.addEventListener('click', function () {
      var body = document.querySelector('#relationships table tbody');
      var frag = document.createDocumentFragment();
      for (var i = body.rows.length; i < D.rels.length; i++) {
        var r = D.rels[i];
        var tr = el('tr', 'rel ' + r[0]);
        add(tr, el('td', '', r[0]));
        add(add(tr, el('td')), el('code', '', r[1]));
        add(tr, el('td', '', r[2]));
        add(tr, el('td', '', r[3]));
        add(tr, el('td', '', r[4]));
        frag.appendChild(tr);
      }
      body.appendChild(frag);
      relsButton.parentNode.hidden = true;
    });
  }

  var q = document.getElementById('q');
  var holder = document.getElementById('rows');
  if (!q || !holder) return;
  var S = D.strings;
  var ops = D.ops;
  var keys = D.contextKeys;
  var selects = Array.prototype.slice.call(document.querySelectorAll('select[data-filter]'));
  var shown = document.getElementById('shown');
  var nomatch = document.getElementById('nomatch');
  var pagers = Array.prototype.slice.call(document.querySelectorAll('nav.pager'));
  var SEGMENT = ['', 'del', 'ins', 'arrow', 'empty', 'note'];
  var fmt = function (n) { return n.toLocaleString('en-US'); };
  var str = function (i) { return i < 0 ? '' : S[i]; };

  // Where each operation's rows start in the flat list of rows (for the search texts).
  var rowBase = new Int32Array(ops.length + 1);
  for (var o = 0; o < ops.length; o++) rowBase[o + 1] = rowBase[o] + ops[o][10].length;

  // ---- search texts: what a row's heading and the row itself show, lowercased -------------
  var opText = new Array(ops.length);
  var rowText = new Array(rowBase[ops.length]);
  var built = 0;
  // A cell's text as a reader sees it: the current value, an arrow, the desired value.
  function cellText(cell) {
    var now = '';
    var then = '';
    var other = [];
    for (var i = 0; i < cell.length; i += 2) {
      var kind = cell[i];
      if (kind === 0 || kind === 1) now += cell[i + 1];
      if (kind === 0 || kind === 2) then += cell[i + 1];
      if (kind === 4) other.push('empty');
      if (kind === 5) other.push(cell[i + 1]);
    }
    return now + ' → ' + then + ' ' + other.join(' ');
  }
  function buildTexts(until) {
    for (; built < until; built++) {
      var op = ops[built];
      var parts = [op[1], op[2], op[3], op[4]];
      for (var k = 0; k < keys.length; k++) if (op[5][k] >= 0) parts.push(keys[k], S[op[5][k]]);
      if (op[6]) parts.push(op[6]);
      if (op[8]) parts.push(D.statuses[op[8][0]][1], op[8][1], op[8][2]);
      var rels = op[9];
      for (var r = 0; r < rels.length; r++) parts.push(D.rels[rels[r]].join(' '));
      opText[built] = parts.join(' ').toLowerCase();
      var rows = op[10];
      for (var j = 0; j < rows.length; j++) {
        var row = rows[j];
        rowText[rowBase[built] + j] = [
          str(row[0]), cellText(row[4]), str(row[1]), row[3] ? '' : 'not written', str(row[2])
        ].join(' ').toLowerCase();
      }
    }
  }
  function buildWhenIdle(deadline) {
    var stop = Math.min(built + 2000, ops.length);
    buildTexts(stop);
    if (built < ops.length) {
      if (deadline && deadline.timeRemaining() > 5) return buildWhenIdle(deadline);
      idle(buildWhenIdle);
    }
  }
  var idle = window.requestIdleCallback || function (f) { return setTimeout(f, 50); };

  // ---- filtering ---------------------------------------------------------------------------
  var stringIds = null;
  function stringId(value) {
    if (!stringIds) {
      stringIds = new Map();
      for (var i = 0; i < S.length; i++) stringIds.set(S[i], i);
    }
    var id = stringIds.get(value);
    return id === undefined ? -2 : id;
  }
  function actionId(name) {
    for (var i = 0; i < D.actions.length; i++) if (D.actions[i][0] === name) return i;
    return -2;
  }

  // The matching operations and, for each, its matching rows: mOps[k], mRows[mStart[k]..].
  var mOps = [];
  var mStart = [0];
  var mRows = [];
  var perAction = [];
  var count = 0;
  var pageStarts = [0];
  var page = 0;
  // 100 rows: a page is laid out in a few tens of milliseconds even on a busy machine.
  var DEFAULT_PER_PAGE = 100;
  var perPage = DEFAULT_PER_PAGE;

  function filter() {
    var needle = q.value.trim().toLowerCase();
    var action = -1;
    var field = null;
    var ctx = [];
    selects.forEach(function (s) {
      if (s.value === '') return;
      var f = s.getAttribute('data-filter');
      if (f === 'data-action') action = actionId(s.value);
      else if (f === 'data-field') field = stringId(s.value);
      else ctx.push([Number(f.slice(6)), stringId(s.value)]);
    });
    if (needle !== '' && built < ops.length) buildTexts(ops.length);
    mOps = [];
    mStart = [0];
    mRows = [];
    perAction = D.actions.map(function () { return [0, 0]; });
    count = 0;
    for (var o = 0; o < ops.length; o++) {
      var op = ops[o];
      if (action !== -1 && op[0] !== action) continue;
      var ok = true;
      for (var c = 0; c < ctx.length && ok; c++) ok = op[5][ctx[c][0]] === ctx[c][1];
      if (!ok) continue;
      var headHit = needle === '' || opText[o].indexOf(needle) !== -1;
      var rows = op[10];
      var before = mRows.length;
      for (var r = 0; r < rows.length; r++) {
        if (field !== null && rows[r][0] !== field) continue;
        if (!headHit && rowText[rowBase[o] + r].indexOf(needle) === -1) continue;
        mRows.push(r);
      }
      if (mRows.length > before) {
        mOps.push(o);
        mStart.push(mRows.length);
        perAction[op[0]][0] += 1;
        perAction[op[0]][1] += mRows.length - before;
      }
    }
    count = mRows.length;
    paginate();
  }

  // Pages hold whole operations: a new page starts once `perPage` rows are on the current one.
  function paginate() {
    pageStarts = [0];
    var rows = 0;
    for (var k = 0; k < mOps.length; k++) {
      rows += mStart[k + 1] - mStart[k];
      if (rows >= perPage && k + 1 < mOps.length) {
        pageStarts.push(k + 1);
        rows = 0;
      }
    }
    pageStarts.push(mOps.length);
  }

  // ---- drawing -----------------------------------------------------------------------------
  function el(tag, className, text) {
    var e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function add(parent, child) {
    parent.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
    return child;
  }
  function plural(n, one, many) { return fmt(n) + ' ' + (n === 1 ? one : many); }

  function heading(op) {
    var tr = el('tr', 'cihead');
    var td = add(tr, el('td'));
    td.colSpan = 4;
    var line = add(td, el('div', 'line'));
    add(line, op[1] === '' ? el('span', 'empty', 'no name') : el('span', 'name', op[1]));
    [['sys_id', 'sys_id', op[2]], ['VM', 'CloudForms VM id', op[3]],
      ['by', 'identity rule that matched', op[4]]].forEach(function (id) {
      if (id[2] === '') return;
      var span = add(line, el('span', 'id', id[0] + ' '));
      span.title = id[1];
      add(span, el('code', '', id[2]));
    });
    for (var k = 0; k < keys.length; k++) {
      if (op[5][k] < 0) continue;
      var chip = add(line, el('span', 'chip'));
      add(chip, el('span', 'k', keys[k]));
      add(chip, ' ' + S[op[5][k]]);
    }
    var outcome = op[8];
    if (D.outcomes) {
      var box = add(line, el('span', 'outcome'));
      if (outcome) {
        var status = D.statuses[outcome[0]];
        add(box, el('span', 'status ' + status[0], status[1]));
        if (op[0] === 0 && outcome[2] !== '') {
          add(box, ' ');
          var created = add(box, el('span', 'id', 'new sys_id '));
          add(created, el('code', '', outcome[2]));
        }
      } else {
        add(box, el('span', 'status muted', op[7] ? 'not attempted' : 'not written'));
      }
    }
    if (op[6] !== null) add(td, el('div', 'reason', op[6]));
    if (op[9].length) {
      var rels = add(td, el('div', 'rels-of'));
      op[9].forEach(function (i) {
        var rel = D.rels[i];
        var chip = add(rels, el('span', 'chip rel ' + rel[0], rel[0] + ' '));
        add(chip, el('code', '', rel[1]));
        add(chip, ' ' + rel[2] + ' → ' + rel[3]);
      });
    }
    if (outcome && outcome[1] !== '') {
      add(td, el('div', 'message ' + D.statuses[outcome[0]][0], outcome[1]));
    }
    return tr;
  }

  function changeRow(row) {
    var tr = el('tr', row[3] ? 'row' : 'row unwritten');
    add(add(tr, el('td', 'field')), el('code', '', str(row[0])));
    var diff = add(tr, el('td', 'diff'));
    var cell = row[4];
    for (var i = 0; i < cell.length; i += 2) {
      var kind = cell[i];
      if (kind === 0) add(diff, cell[i + 1]);
      else if (kind === 3) add(diff, el('span', 'arrow', ' → '));
      else if (kind === 4) add(diff, el('span', 'empty', 'empty'));
      else if (kind === 5) add(diff, el('span', 'note', cell[i + 1]));
      else add(diff, el(SEGMENT[kind], '', cell[i + 1]));
    }
    var mode = add(tr, el('td', 'modecell'));
    if (row[1] >= 0) {
      add(mode, el('span', row[3] ? 'mode' : 'mode ignore', S[row[1]]));
      if (!row[3]) {
        add(mode, ' ');
        add(mode, el('span', 'hint', 'not written'));
      }
    }
    var from = add(tr, el('td', 'from'));
    if (row[2] >= 0) add(from, el('code', 'expr', S[row[2]]));
    return tr;
  }

  function group(actionIndex) {
    var a = D.actions[actionIndex];
    var section = el('section', 'group a-' + a[0]);
    var h3 = add(section, el('h3'));
    add(h3, el('span', 'pill a-' + a[0], a[1]));
    add(h3, ' ');
    add(h3, el('span', 'count',
      plural(perAction[actionIndex][0], 'CI', 'CIs') + ' · ' +
      plural(perAction[actionIndex][1], 'change', 'changes')));
    add(section, el('p', 'desc', a[2]));
    var table = add(section, el('table', 'changes'));
    add(table, el('caption', 'sr-only', a[1] + ': ' + a[2]));
    var cols = add(table, el('colgroup'));
    ['w-field', 'w-change', 'w-mode', 'w-from'].forEach(function (c) { add(cols, el('col', c)); });
    var head = add(add(table, el('thead')), el('tr'));
    ['Field', 'Change', 'Mode', 'From'].forEach(function (t) {
      var th = add(head, el('th', '', t));
      th.scope = 'col';
    });
    return { section: section, table: table };
  }

  function draw() {
    var pages = pageStarts.length - 1;
    if (page >= pages) page = Math.max(0, pages - 1);
    var frag = document.createDocumentFragment();
    var current = -1;
    var g = null;
    for (var k = pageStarts[page]; k < pageStarts[page + 1]; k++) {
      var op = ops[mOps[k]];
      if (op[0] !== current) {
        current = op[0];
        g = group(current);
        frag.appendChild(g.section);
      }
      var body = add(g.table, el('tbody', 'op'));
      add(body, heading(op));
      for (var i = mStart[k]; i < mStart[k + 1]; i++) add(body, changeRow(op[10][mRows[i]]));
    }
    holder.textContent = '';
    holder.appendChild(frag);
    shown.textContent = fmt(count) + ' of ' + fmt(D.total) + ' changes';
    nomatch.hidden = count !== 0;
    drawPagers(pages);
  }

  // ---- pagers ------------------------------------------------------------------------------
  var sizes = [100, 200, 500, 1000];
  if (D.total <= 5000) sizes.push(0);
  pagers.forEach(function (nav, n) {
    var prev = add(nav, el('button', 'prev', '← Previous'));
    prev.type = 'button';
    var info = add(nav, el('span', 'info'));
    if (n === 0) info.setAttribute('aria-live', 'polite');
    var next = add(nav, el('button', 'next', 'Next →'));
    next.type = 'button';
    var label = add(nav, el('label', 'sel'));
    add(label, el('span', '', 'Rows per page'));
    var size = add(label, el('select', 'per-page'));
    sizes.forEach(function (s) {
      var opt = add(size, el('option', '', s ? String(s) : 'all'));
      opt.value = String(s);
      opt.selected = s === perPage;
    });
    var go = function (to) {
      page = to;
      draw();
      if (n > 0) document.getElementById('changes').scrollIntoView();
    };
    prev.addEventListener('click', function () { go(page - 1); });
    next.addEventListener('click', function () { go(page + 1); });
    size.addEventListener('change', function () {
      perPage = Number(size.value) || Infinity;
      page = 0;
      paginate();
      draw();
    });
  });
  function drawPagers(pages) {
    var first = count === 0 ? 0 : mStart[pageStarts[page]] + 1;
    var last = mStart[pageStarts[page + 1]];
    pagers.forEach(function (nav) {
      nav.hidden = pages <= 1 && perPage === DEFAULT_PER_PAGE;
      nav.querySelector('.prev').disabled = page === 0;
      nav.querySelector('.next').disabled = page >= pages - 1;
      nav.querySelector('.info').textContent = 'Page ' + fmt(pages ? page + 1 : 0) + ' of ' +
        fmt(pages) + ' · changes ' + fmt(first) + '–' + fmt(last) + ' of ' + fmt(count);
      nav.querySelector('.per-page').value = String(perPage === Infinity ? 0 : perPage);
    });
  }

  // ---- events ------------------------------------------------------------------------------
  var timer = 0;
  var cost = 0;
  function same(a, b) {
    if (a.length !== b.length) return false;
    for (var i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }
  function apply() {
    var t0 = performance.now();
    var before = [mOps, mRows, mStart, page];
    page = 0;
    filter();
    // Typing often keeps the same rows (`v`, `vm`, `vm-`): then only the count is rewritten.
    if (before[3] === 0 && same(before[0], mOps) && same(before[1], mRows) &&
        same(before[2], mStart) && holder.firstChild &&
        holder.firstChild.id !== 'loading') {
      shown.textContent = fmt(count) + ' of ' + fmt(D.total) + ' changes';
    } else {
      draw();
    }
    cost = performance.now() - t0;
  }
  // Keystrokes: at once while a pass is quick, else once typing pauses.
  q.addEventListener('input', function () {
    clearTimeout(timer);
    timer = setTimeout(apply, cost > 50 ? 150 : 0);
  });
  selects.forEach(function (s) { s.addEventListener('change', apply); });
  document.getElementById('reset').addEventListener('click', function () {
    q.value = '';
    selects.forEach(function (s) { s.value = ''; });
    apply();
  });
  apply();
  idle(buildWhenIdle);
})();
