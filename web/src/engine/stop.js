// Stop strings: text that ends the completion and is never emitted, not even in part. Text is held back while
// its end could still be the start of a stop string, and released once it cannot.

export class StopStringFilter {
  /** @param {string[]} stops non-empty strings */
  constructor(stops) {
    this.stops = stops;
    this.held = "";
    this.stopped = false;
  }

  /**
   * Feed newly generated text; returns the text that is now safe to emit. After a stop string is found,
   * `stopped` is true and the text from the stop string on is dropped.
   * @param {string} text
   */
  push(text) {
    const buffer = this.held + text;
    let cut = -1;
    for (const stop of this.stops) {
      const at = buffer.indexOf(stop);
      if (at !== -1 && (cut === -1 || at < cut)) cut = at;
    }
    if (cut !== -1) {
      this.stopped = true;
      this.held = "";
      return buffer.slice(0, cut);
    }
    const keep = this.partialStopLength(buffer);
    this.held = buffer.slice(buffer.length - keep);
    return buffer.slice(0, buffer.length - keep);
  }

  /** At the end of generation (no stop string came): the held text, which turned out not to be one. */
  flush() {
    const rest = this.held;
    this.held = "";
    return rest;
  }

  /** Length of the longest end of `buffer` that is a proper start of some stop string. */
  partialStopLength(buffer) {
    let longest = 0;
    for (const stop of this.stops) {
      for (let n = Math.min(stop.length - 1, buffer.length); n > longest; n--) {
        if (buffer.endsWith(stop.slice(0, n))) {
          longest = n;
          break;
        }
      }
    }
    return longest;
  }
}
