
(function () {
  var q = document.getElementById('q');
  if (!q) return;
  var selects = Array.prototype.slice.call(document.querySelectorAll('select[data-filter]'));
  var rows = Array.prototype.slice.call(document.querySelectorAll('tr[data-row]'));
  var ops = Array.prototype.slice.call(document.querySelectorAll('tbody.op'));
  var groups = Array.prototype.slice.call(document.querySelectorAll('section.group'));
  var shown = document.getElementById('shown');
  var nomatch = document.getElementById('nomatch');
  // A row matches the text filter on its own text or its CI heading's (name, ids, context).
  var texts = rows.map(function (r) {
    var head = r.parentNode.querySelector('tr.cihead');
    return ((head ? head.textContent : '') + ' ' + r.textContent).toLowerCase();
  });
  function apply() {
    var needle = q.value.trim().toLowerCase();
    var wanted = selects.filter(function (s) { return s.value !== ''; });
    var count = 0;
    rows.forEach(function (row, i) {
      var ok = needle === '' || texts[i].indexOf(needle) !== -1;
      for (var j = 0; ok && j < wanted.length; j++) {
        ok = row.getAttribute(wanted[j].getAttribute('data-filter')) === wanted[j].value;
      }
      row.hidden = !ok;
      if (ok) count++;
    });
    ops.forEach(function (op) {
      op.hidden = !op.querySelector('tr[data-row]:not([hidden])');
    });
    groups.forEach(function (g) {
      g.hidden = !g.querySelector('tr[data-row]:not([hidden])');
    });
    shown.textContent = count + ' of ' + rows.length + ' changes';
    nomatch.hidden = count !== 0;
  }
  q.addEventListener('input', apply);
  selects.forEach(function (s) { s.addEventListener('change', apply); });
  document.getElementById('reset').addEventListener('click', function () {
    q.value = '';
    selects.forEach(function (s) { s.value = ''; });
    apply();
  });
  apply();
})();
