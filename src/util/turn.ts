/** A turn of the event loop, its I/O callbacks included: what a long loop awaits so that the rest of the program runs meanwhile. */
export const turn = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));
