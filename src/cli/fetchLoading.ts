/**
 * Loads modules with the global `Response` hidden. pg asks at load whether it runs in a Cloudflare
 * Worker: where `navigator` is missing (Node.js 20) it constructs a Response, and that first touch
 * of the global makes Node.js load its fetch implementation (undici): ~30 ms of every command's
 * start (~0.1 s on a loaded machine), for nothing seqwatch uses. Newer Node.js has `navigator` and
 * never gets that far. For a module that loads pg later than start-up (replay loads it while it
 * scans); main.ts loads the commands' modules through it.
 */
export async function withoutFetchLoading<T>(load: () => Promise<T>): Promise<T> {
  const response = Object.getOwnPropertyDescriptor(globalThis, 'Response');
  if ('navigator' in globalThis || !response?.configurable) return load();
  Object.defineProperty(globalThis, 'Response', { value: undefined, configurable: true, writable: true });
  try {
    return await load();
  } finally {
    Object.defineProperty(globalThis, 'Response', response);
  }
}
