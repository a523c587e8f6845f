/** Whether data begins with gzip's magic bytes: a log is told compressed by them, whatever its name. */
export const isGzip = (bytes: Uint8Array): boolean => bytes[0] === 0x1f && bytes[1] === 0x8b;
