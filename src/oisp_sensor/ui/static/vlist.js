// A virtualised list of fixed-height rows: only the rows in view (plus a margin) exist in
// the DOM, and their elements are reused as the list scrolls, so 50,000 rows cost what 50
// do. Rows are absolutely positioned inside a spacer as tall as the whole list.

export class VirtualList {
  /**
   * @param {HTMLElement} scroller  the element that scrolls (overflow: auto)
   * @param {object} opts  rowHeight, count(): number, createRow(): HTMLElement,
   *   renderRow(el, index), overscan (rows above and below the view)
   */
  constructor(scroller, { rowHeight, count, createRow, renderRow, keyOf, clearRow, overscan = 8 }) {
    this.scroller = scroller;
    this.rowHeight = rowHeight;
    this.count = count;
    this.createRow = createRow;
    this.renderRow = renderRow;
    // An element keeps showing the same item (by key) while rows are inserted above it, so
    // what is under the pointer does not change hands between two frames.
    this.keyOf = keyOf || ((i) => i);
    this.clearRow = clearRow || (() => {}); // a row element put aside: forget what it showed
    this.overscan = overscan;
    this.spacer = document.createElement("div");
    this.spacer.className = "vl-spacer";
    this.spacer.style.position = "relative";
    scroller.appendChild(this.spacer);
    this.pool = []; // {el, index, key}
    this.frame = 0;
    this.dirty = true; // data changed: rows in view must be rendered again
    this.first = 0;
    this.last = -1;
    scroller.addEventListener("scroll", () => this.schedule(), { passive: true });
    new ResizeObserver(() => this.schedule()).observe(scroller);
  }

  /** Re-render on the next frame (call when the data or its order changed). */
  invalidate() {
    this.dirty = true;
    this.schedule();
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  /** Size the spacer for the current count (before moving the scroll position down). */
  syncHeight() {
    const n = this.count();
    const height = `${n * this.rowHeight}px`;
    if (this.spacer.style.height !== height) this.spacer.style.height = height;
    return n;
  }

  /** Render now (tests and benchmarks measure this synchronously). */
  render() {
    const n = this.syncHeight();
    const rh = this.rowHeight;
    const top = this.scroller.scrollTop;
    const view = this.scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / rh) - this.overscan);
    const last = Math.min(n - 1, Math.ceil((top + view) / rh) + this.overscan);
    const need = Math.max(0, last - first + 1);
    while (this.pool.length < need) {
      const el = this.createRow();
      el.style.position = "absolute";
      el.style.left = "0";
      el.style.right = "0";
      el.style.height = `${rh}px`;
      this.spacer.appendChild(el);
      this.pool.push({ el, index: -1, key: null });
    }
    const wanted = new Map(); // key -> index, for the rows in view
    for (let i = first; i <= last; i++) wanted.set(this.keyOf(i), i);
    const free = [];
    const placed = new Set();
    for (const slot of this.pool) {
      const index = slot.key === null ? undefined : wanted.get(slot.key);
      if (index === undefined || placed.has(slot.key)) free.push(slot);
      else {
        placed.add(slot.key);
        if (slot.index !== index) {
          slot.index = index;
          slot.el.style.transform = `translateY(${index * rh}px)`;
        }
        if (this.dirty) this.renderRow(slot.el, index);
      }
    }
    for (const [key, index] of wanted) {
      if (placed.has(key)) continue;
      const slot = free.pop();
      slot.key = key;
      slot.index = index;
      slot.el.style.transform = `translateY(${index * rh}px)`;
      if (slot.el.hidden) slot.el.hidden = false;
      this.renderRow(slot.el, index);
    }
    for (const slot of free) {
      if (slot.key !== null) {
        slot.key = null;
        slot.index = -1;
        slot.el.hidden = true;
        this.clearRow(slot.el);
      }
    }
    this.first = first;
    this.last = last;
    this.dirty = false;
  }

  /** Indexes currently rendered (with the overscan margin). */
  range() {
    return [this.first, this.last];
  }

  /** Scroll so that `index` is visible (nearest edge). */
  scrollToIndex(index) {
    const rh = this.rowHeight;
    const top = index * rh;
    const s = this.scroller;
    if (top < s.scrollTop) s.scrollTop = top;
    else if (top + rh > s.scrollTop + s.clientHeight) s.scrollTop = top + rh - s.clientHeight;
  }
}
