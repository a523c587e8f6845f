/**
 * The Node.js versions seqwatch supports (package.json "engines"): checked before anything else is
 * loaded, so an old Node gets one clear sentence instead of a syntax or import error.
 */
export const MINIMUM_NODE = [20, 19] as const;

export function supportedNode(version: string): boolean {
  const [major = 0, minor = 0] = version.replace(/^v/, '').split('.').map(Number);
  return major > MINIMUM_NODE[0] || (major === MINIMUM_NODE[0] && minor >= MINIMUM_NODE[1]);
}

if (!supportedNode(process.versions.node)) {
  process.stderr.write(
    `seqwatch: Node.js ${process.versions.node} is not supported: seqwatch needs Node.js ${MINIMUM_NODE.join('.')} or newer ` +
      `(${process.execPath}): install a newer Node.js and start again\n`,
  );
  process.exit(1);
}
