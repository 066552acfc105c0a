// Injected by report_browser.py into a copy of a report: once the page has drawn (body
// data-offsim-report is no longer "pending"), measures what a reader sees in every chart and records it as
// JSON on <body data-offsim-layout>, for the test to judge:
//   * the chart's drawn extent against the page's content box (a chart wider than the page is cut off);
//   * text that Vega shortened with an ellipsis (a text item whose width exceeds its `limit`);
//   * axis labels of one axis whose boxes touch or overlap, and any two texts that overlap;
//   * each legend's entries: label and symbol (colour, shape, dash);
//   * facet cells: their title, data symbols drawn, and axis labels of their own (x-axis labels counted apart);
//   * every text of the chart (lines joined by a space) and the x-axis labels of its axes, so the test can
//     find every scenario and policy name written in full and count the ticks of a timeline.
// It reads the Vega views the page keeps in window.offsimViews and Vega's own text metrics.
(function () {
  var kLabelGap = 3;  // px between two labels of one axis for them to read as two

  function textLines(item) {
    var t = item.text;
    if (t === undefined || t === null) return [];
    return (Array.isArray(t) ? t : [t]).map(String).filter(function (s) { return s.length > 0; });
  }

  function visible(item) { return item.opacity === undefined || item.opacity > 0; }

  function overlaps(items) {
    var boxes = items.filter(visible).filter(function (i) { return textLines(i).length > 0 && i.bounds; });
    var out = [];
    for (var a = 0; a < boxes.length; ++a) {
      for (var b = a + 1; b < boxes.length; ++b) {
        var p = boxes[a].bounds, q = boxes[b].bounds;
        if (p.x1 < q.x2 + kLabelGap && q.x1 < p.x2 + kLabelGap && p.y1 < q.y2 && q.y1 < p.y2) {
          out.push([textLines(boxes[a]).join(' '), textLines(boxes[b]).join(' ')]);
        }
      }
    }
    return out;
  }

  // Every mark under `mark` (a scenegraph mark), depth first.
  function eachMark(mark, visit) {
    visit(mark);
    if (mark.marktype === 'group') {
      (mark.items || []).forEach(function (group) { (group.items || []).forEach(function (m) { eachMark(m, visit); }); });
    }
  }

  // Every visible text item with its bounds in the chart's coordinates (bounds are relative to the
  // enclosing group item, whose x / y place it in its own parent).
  function placedTexts(mark, dx, dy, out) {
    if (mark.marktype === 'text') {
      (mark.items || []).forEach(function (item) {
        if (!visible(item) || !item.bounds || textLines(item).length === 0) return;
        var b = item.bounds;
        if (!(b.x2 > b.x1)) return;
        out.push({role: mark.role, text: textLines(item).join(' '), x1: b.x1 + dx, x2: b.x2 + dx, y1: b.y1 + dy, y2: b.y2 + dy});
      });
    }
    if (mark.marktype === 'group') {
      (mark.items || []).forEach(function (group) {
        (group.items || []).forEach(function (m) { placedTexts(m, dx + (group.x || 0), dy + (group.y || 0), out); });
      });
    }
    return out;
  }

  function overlappingTexts(texts) {
    var out = [];
    for (var a = 0; a < texts.length; ++a) {
      for (var b = a + 1; b < texts.length; ++b) {
        var p = texts[a], q = texts[b];
        // 1 px of tolerance: glyph boxes of adjacent lines may share an edge.
        if (p.x1 < q.x2 - 1 && q.x1 < p.x2 - 1 && p.y1 < q.y2 - 1 && q.y1 < p.y2 - 1) out.push([p.role + ' ' + p.text, q.role + ' ' + q.text]);
      }
    }
    return out;
  }

  // An axis-label mark belongs to a horizontal (x) axis when its labels spread along x more than along y, or,
  // with one label, when it hangs below its tick (Vega's bottom axis sets baseline "top").
  function horizontalAxis(mark) {
    var items = (mark.items || []).filter(function (i) { return visible(i) && textLines(i).length > 0 && i.bounds; });
    if (items.length === 0) return false;
    if (items.length === 1) return items[0].baseline === 'top';
    var xs = items.map(function (i) { return (i.bounds.x1 + i.bounds.x2) / 2; });
    var ys = items.map(function (i) { return (i.bounds.y1 + i.bounds.y2) / 2; });
    return Math.max.apply(null, xs) - Math.min.apply(null, xs) > Math.max.apply(null, ys) - Math.min.apply(null, ys);
  }

  function measureChart(entry, contentLeft, contentRight) {
    var element = document.getElementById(entry.id);
    var canvas = element && element.querySelector('canvas');
    var box = canvas ? canvas.getBoundingClientRect() : {left: 0, right: 0, width: 0};
    var chart = {id: entry.id, name: entry.name, left: box.left, right: box.right, width: box.width,
                 content_left: contentLeft, content_right: contentRight,
                 truncated: [], overlapping_labels: [], overlapping_text: [], legends: [], cells: [], texts: [], x_labels: []};
    var root = entry.view.scenegraph().root;
    var texts = placedTexts(root, 0, 0, []);
    chart.overlapping_text = overlappingTexts(texts).slice(0, 20);
    chart.texts = texts.map(function (t) { return t.text; }).slice(0, 3000);
    eachMark(root, function (mark) {
      if (mark.marktype === 'text') {
        (mark.items || []).forEach(function (item) {
          if (!visible(item) || !(item.limit > 0)) return;
          textLines(item).forEach(function (line) {
            // Vega shortens a line whose full width reaches the limit (vega-scenegraph's truncate); its
            // textMetrics.width measures the shortened text, so measure an unlimited copy.
            var full = vega.textMetrics.width(Object.assign({}, item, {limit: 0}), line);
            if (full >= item.limit) chart.truncated.push({role: mark.role, text: line, width: full, limit: item.limit});
          });
        });
      }
      if (mark.role === 'axis-label') {
        overlaps(mark.items || []).forEach(function (pair) { chart.overlapping_labels.push(pair); });
        if (horizontalAxis(mark) && chart.x_labels.length < 500) {
          (mark.items || []).filter(visible).forEach(function (i) { chart.x_labels.push(textLines(i).join(' ')); });
        }
      }
      if (mark.role === 'legend') {
        (mark.items || []).forEach(function (legend) {
          var entries = [];
          eachMark({marktype: 'group', items: [legend]}, function (m) {
            if (m.role === 'legend-symbol') {
              (m.items || []).forEach(function (s) {
                var filled = s.fill && s.fill !== 'transparent' && s.fillOpacity !== 0;
                entries.push({colour: filled ? s.fill : s.stroke, shape: String(s.shape || ''), dash: String(s.strokeDash || '')});
              });
            }
          });
          var k = 0;
          eachMark({marktype: 'group', items: [legend]}, function (m) {
            if (m.role === 'legend-label') {
              (m.items || []).forEach(function (l) { if (entries[k]) entries[k].label = textLines(l).join(' '); ++k; });
            }
          });
          var title = '';
          eachMark({marktype: 'group', items: [legend]}, function (m) {
            if (m.role === 'legend-title') (m.items || []).forEach(function (t) { title = textLines(t).join(' '); });
          });
          chart.legends.push({title: title, entries: entries});
        });
      }
      if (mark.name === 'cell' && mark.marktype === 'group') {
        (mark.items || []).forEach(function (cell) {
          var info = {title: '', symbols: 0, axis_labels: 0, x_axis_labels: 0};
          eachMark({marktype: 'group', items: [cell]}, function (m) {
            if (m.role === 'title-text') (m.items || []).forEach(function (t) { info.title = textLines(t).join(' '); });
            if (m.role === 'mark' && m.marktype === 'symbol') info.symbols += (m.items || []).length;
            if (m.role === 'axis-label') {
              var shown = (m.items || []).filter(function (i) { return visible(i) && textLines(i).length > 0; }).length;
              info.axis_labels += shown;
              if (horizontalAxis(m)) info.x_axis_labels += shown;
            }
          });
          chart.cells.push(info);
        });
      }
    });
    return chart;
  }

  function measure() {
    var style = getComputedStyle(document.body);
    var rect = document.body.getBoundingClientRect();
    var contentLeft = rect.left + parseFloat(style.paddingLeft);
    var contentRight = rect.right - parseFloat(style.paddingRight);
    var out = {window_width: window.innerWidth, charts: []};
    (window.offsimViews || []).forEach(function (entry) {
      try {
        out.charts.push(measureChart(entry, contentLeft, contentRight));
      } catch (e) {
        out.charts.push({id: entry.id, name: entry.name, error: String(e && e.message || e)});
      }
    });
    document.body.setAttribute('data-offsim-layout', JSON.stringify(out));
  }

  var timer = setInterval(function () {
    if (!document.body || document.body.getAttribute('data-offsim-report') === 'pending') return;
    clearInterval(timer);
    measure();
  }, 50);
})();
