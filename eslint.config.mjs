// ESLint: JavaScript's and typescript-eslint's recommended rules (correctness, not layout: Prettier
// owns the layout, `.prettierrc.json`). `npm run lint` runs this and `prettier --check`.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default defineConfig(
  // test/fixtures: the corpus, programs and logs kept as the real libraries wrote them.
  { ignores: ['dist/', 'coverage/', 'node_modules/', 'test/fixtures/'] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    // Everything here runs on Node (src, test, bench, the .mjs scripts).
    languageOptions: { globals: globals.node },
    // A disable comment that no longer silences anything is an error: each one must keep its reason.
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // `let daemon; process.on('SIGTERM', () => daemon?.stop()); daemon = await Daemon.start()`:
      // the handlers must exist before the value does, so the one assignment cannot be a const.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },
  {
    // The program itself, with type information: a promise nobody awaits or catches is an unhandled
    // rejection, which stops Node (a daemon that stops heals nothing), or an error lost in silence.
    // Intended fire-and-forget calls say so with `void`. (The rest of recommendedTypeChecked, mostly
    // no-unsafe-* on JSON.parse results in the tests, would cost much and catch little here.)
    files: ['src/**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
    },
  },
);
