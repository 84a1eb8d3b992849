// The timeline's data: AI call rows, newest first, loaded page by page from /api/calls and
// kept current from the live stream. A live event only says "something changed"; the rows
// themselves always come from the API (`since_seq` re-sends a call when its response
// arrives), so the filters and the row shape are the server's, in one place.

import { getJson } from "./api.js";

const FIRST_PAGE = 300; // small: the first screen must appear at once
const PAGE = 5000; // the API's largest page: a far jump needs few round trips
const LIVE_PAGE = 5000;

export class CallsModel {
  constructor(onChange) {
    this.onChange = onChange; // (kind: "reset"|"older"|"live", info) => void
    this.filters = {};
    this.generation = 0;
    this.clear();
  }

  clear() {
    this.rows = []; // newest first
    this.byId = new Map();
    this.total = 0;
    this.latestSeq = 0;
    this.exhausted = false;
    this.loadingOlder = false;
    this.wanted = 0;
    this.liveBusy = false;
    this.livePending = false;
    this.liveAfter = "";
    this.error = null;
    this.loaded = false;
  }

  /** The number of rows the list shows (loaded or not yet). */
  get count() {
    return this.exhausted ? this.rows.length : Math.max(this.rows.length, this.total);
  }

  async reset(filters) {
    this.filters = { ...filters };
    const gen = ++this.generation;
    this.clear();
    this.onChange("reset", {});
    try {
      const body = await getJson("/api/calls", { ...this.filters, limit: FIRST_PAGE });
      if (gen !== this.generation) return;
      this.total = body.total;
      this.latestSeq = body.latest_seq;
      this.appendOlder(body.calls);
      this.exhausted = body.calls.length < FIRST_PAGE;
      this.loaded = true;
      this.onChange("reset", { loaded: true });
    } catch (err) {
      if (gen !== this.generation) return;
      this.error = err.message;
      this.loaded = true;
      this.onChange("reset", { error: err.message });
    }
  }

  /** Rows come ascending from the API; the list keeps them newest first. */
  appendOlder(ascending) {
    for (let i = ascending.length - 1; i >= 0; i--) {
      const row = ascending[i];
      if (this.byId.has(row.request_id)) continue;
      this.byId.set(row.request_id, row);
      this.rows.push(row);
    }
  }

  /**
   * Make sure rows up to `index` are loaded: older pages are fetched one after the other
   * (the API pages by sequence number, so row N needs the pages before it) until the
   * wanted index, the latest one asked for, is covered.
   */
  async ensureLoaded(index) {
    this.wanted = Math.max(this.wanted || 0, index);
    if (this.exhausted || this.loadingOlder || !this.loaded) return;
    const gen = this.generation;
    this.loadingOlder = true;
    try {
      while (gen === this.generation && !this.exhausted && this.wanted >= this.rows.length - 50) {
        const oldest = this.rows.length ? this.rows[this.rows.length - 1].seq : undefined;
        const body = await getJson("/api/calls", { ...this.filters, limit: PAGE, before_seq: oldest });
        if (gen !== this.generation) return;
        this.appendOlder(body.calls);
        if (body.calls.length < PAGE) this.exhausted = true;
        this.onChange("older", {});
      }
    } catch (err) {
      if (gen === this.generation) {
        this.error = err.message;
        this.onChange("older", {});
      }
    } finally {
      if (gen === this.generation) this.loadingOlder = false;
    }
  }

  /**
   * Something happened live: fetch what changed since the last look (coalesced). `eventId`,
   * the live event that prompted it: the server answers once its store has that event (the
   * stream can be ahead of the store), else the change could be missed until the next one.
   */
  poke(eventId) {
    if (!this.loaded) return;
    if (eventId) this.liveAfter = eventId; // the latest: the store takes events in order
    if (this.liveBusy) {
      this.livePending = true;
      return;
    }
    this.fetchLive();
  }

  async fetchLive() {
    const gen = this.generation;
    this.liveBusy = true;
    this.livePending = false;
    try {
      let more = true;
      while (more && gen === this.generation) {
        const after = this.liveAfter;
        this.liveAfter = "";
        const body = await getJson("/api/calls", {
          ...this.filters,
          since_seq: this.latestSeq,
          limit: LIVE_PAGE,
          after,
        });
        if (gen !== this.generation) return;
        const { added, updated } = this.mergeLive(body.calls);
        this.total = body.total;
        this.latestSeq = Math.max(this.latestSeq, body.latest_seq);
        more = body.calls.length >= LIVE_PAGE;
        this.error = null;
        this.onChange("live", { added, updated });
      }
    } catch (err) {
      if (gen === this.generation) this.error = err.message;
    } finally {
      if (gen === this.generation) {
        this.liveBusy = false;
        if (this.livePending) setTimeout(() => this.poke(), 50);
      }
    }
  }

  mergeLive(ascending) {
    const fresh = [];
    const updated = [];
    const now = performance.now();
    for (const row of ascending) {
      const known = this.byId.get(row.request_id);
      if (known) {
        Object.assign(known, row);
        known._touched = now;
        updated.push(known);
      } else {
        row._touched = now;
        this.byId.set(row.request_id, row);
        fresh.push(row);
      }
    }
    if (fresh.length) {
      // Live rows are newer than everything loaded, except when a page raced with them.
      fresh.sort((a, b) => b.seq - a.seq);
      if (!this.rows.length || fresh[fresh.length - 1].seq > this.rows[0].seq) {
        this.rows = fresh.concat(this.rows);
      } else {
        this.rows = this.rows.concat(fresh).sort((a, b) => b.seq - a.seq);
      }
    }
    return { added: fresh.length, updated: updated.length };
  }

  indexOf(requestId) {
    const row = this.byId.get(requestId);
    return row ? this.rows.indexOf(row) : -1;
  }
}
