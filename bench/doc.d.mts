// Types of bench/doc.mjs for the tests (test/bench/doc.unit.test.ts).
export interface BenchResult {
  name: string;
  data: Record<string, unknown>;
}
export interface BenchNotes {
  intro: string;
  sections: Map<string, string>;
}
export function loadResults(dir: string): BenchResult[];
export function readNotes(path: string): BenchNotes;
export function renderBenchmarksDoc(results: BenchResult[], notes: BenchNotes): string;
export function renderReadmeTable(results: BenchResult[]): string;
export function withReadmeTable(readme: string, table: string): string;
export const README_BEGIN: string;
export const README_END: string;
