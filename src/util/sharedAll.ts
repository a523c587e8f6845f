/**
 * One promise for all of `promises`, the same one again for the same promises in the same order:
 * the errors of a storm that the same checks answer then share it, and whoever waits for them (a
 * source's checkpoint) holds one promise, not one per error (a Promise.all per error held 10,000
 * in a storm). Remembered by the first promise, weakly: nothing is kept once the checks are done.
 */
export class SharedAll {
  private readonly combined = new WeakMap<Promise<void>, { promises: Array<Promise<void>>; all: Promise<void> }>();

  /** `around` wraps the one promise once, as it is made (the remediator tracks it as work under way). */
  all(promises: Array<Promise<void>>, around: (all: Promise<void>) => Promise<void> = (all) => all): Promise<void> {
    const first = promises[0];
    if (first === undefined) return around(allOf(promises));
    const known = this.combined.get(first);
    if (known !== undefined && known.promises.length === promises.length && known.promises.every((p, i) => p === promises[i])) return known.all;
    const all = around(allOf(promises));
    this.combined.set(first, { promises, all });
    return all;
  }
}

const allOf = (promises: Array<Promise<void>>): Promise<void> => (promises.length === 1 ? promises[0]! : Promise.all(promises).then(() => {}));
