/**
 * The words a server writes before a message, in every language PostgreSQL's message catalogs
 * translate them to. A server with lc_messages German writes `FEHLER:  ` where an English one
 * writes `ERROR:  `, `ZUSAMMENHANG:  ` for `CONTEXT:  `, and French puts a space before the colon
 * (`ASTUCE :  `). csvlog and jsonlog carry the translated word too. Parsers turn them back into the
 * English word, so that everything after them speaks one language.
 *
 * Generated from Debian's PostgreSQL 15 catalogs (/usr/share/locale/<lang>/LC_MESSAGES/postgres-15.mo);
 * test/formats/severity.test.ts checks the table against the catalogs installed on the machine.
 */

/** Severity words of translated servers, from PostgreSQL's message catalogs (de es fr it ja ka ko ru sv uk zh_CN): word -> English. */
export const TRANSLATED_SEVERITIES: Readonly<Record<string, string>> = {
  HINWEIS: 'NOTICE',
  WARNUNG: 'WARNING',
  FEHLER: 'ERROR',
  PANIK: 'PANIC',
  ATTENTION: 'WARNING',
  ERREUR: 'ERROR',
  NOTIFICA: 'NOTICE',
  ATTENZIONE: 'WARNING',
  ERRORE: 'ERROR',
  FATALE: 'FATAL',
  PANICO: 'PANIC',
  გამართვა: 'DEBUG',
  ინფორმაცია: 'INFO',
  გაფრთხილება: 'NOTICE',
  შეცდომა: 'ERROR',
  ჟურნალი: 'LOG',
  ფატალური: 'FATAL',
  პანიკა: 'PANIC',
  디버그: 'DEBUG',
  정보: 'INFO',
  알림: 'NOTICE',
  경고: 'WARNING',
  오류: 'ERROR',
  로그: 'LOG',
  치명적오류: 'FATAL',
  손상: 'PANIC',
  ОТЛАДКА: 'DEBUG',
  ИНФОРМАЦИЯ: 'INFO',
  ЗАМЕЧАНИЕ: 'NOTICE',
  ПРЕДУПРЕЖДЕНИЕ: 'WARNING',
  ОШИБКА: 'ERROR',
  СООБЩЕНИЕ: 'LOG',
  ВАЖНО: 'FATAL',
  ПАНИКА: 'PANIC',
  NOTIS: 'NOTICE',
  VARNING: 'WARNING',
  FEL: 'ERROR',
  LOGG: 'LOG',
  FATALT: 'FATAL',
  НАЛАГОДЖЕННЯ: 'DEBUG',
  ІНФОРМАЦІЯ: 'INFO',
  ПОВІДОМЛЕННЯ: 'NOTICE',
  ПОПЕРЕДЖЕННЯ: 'WARNING',
  ПОМИЛКА: 'ERROR',
  ЗАПИСУВАННЯ: 'LOG',
  ФАТАЛЬНО: 'FATAL',
  ПАНІКА: 'PANIC',
  调试: 'DEBUG',
  信息: 'INFO',
  注意: 'NOTICE',
  警告: 'WARNING',
  错误: 'ERROR',
  日志: 'LOG',
  致命错误: 'FATAL',
  比致命错误还过分的错误: 'PANIC',
};
/** The markers of a message's further lines as translated (spacing exactly as printed) -> English. */
export const TRANSLATED_SECONDARY_MARKERS: Readonly<Record<string, string>> = {
  'TIPP:  ': 'HINT',
  'ANFRAGE:  ': 'QUERY',
  'ZUSAMMENHANG:  ': 'CONTEXT',
  'ANWEISUNG:  ': 'STATEMENT',
  'ORT:  ': 'LOCATION',
  'DETALLE:  ': 'DETAIL',
  'CONSULTA:  ': 'QUERY',
  'CONTEXTO:  ': 'CONTEXT',
  'SENTENCIA:  ': 'STATEMENT',
  'UBICACIÓN:  ': 'LOCATION',
  'DÉTAIL:  ': 'DETAIL',
  'ASTUCE :  ': 'HINT',
  'REQUÊTE :  ': 'QUERY',
  'CONTEXTE :  ': 'CONTEXT',
  'INSTRUCTION :  ': 'STATEMENT',
  'EMPLACEMENT :  ': 'LOCATION',
  'DETTAGLI:  ': 'DETAIL',
  'SUGGERIMENTO:  ': 'HINT',
  'CONTESTO:  ': 'CONTEXT',
  'ISTRUZIONE:  ': 'STATEMENT',
  'POSIZIONE:  ': 'LOCATION',
  '詳細:  ': 'DETAIL',
  'ヒント:  ': 'HINT',
  '問い合わせ:  ': 'QUERY',
  '文脈:  ': 'CONTEXT',
  '文:  ': 'STATEMENT',
  '場所:  ': 'LOCATION',
  'დეტალები:  ': 'DETAIL',
  'მინიშნება:  ': 'HINT',
  'მოთხოვნა:  ': 'QUERY',
  'კონტექსტი:  ': 'CONTEXT',
  'ოპერატორი:  ': 'STATEMENT',
  'მდებარეობა:   ': 'LOCATION',
  '상세정보:  ': 'DETAIL',
  '힌트:  ': 'HINT',
  '쿼리:': 'QUERY',
  '내용:  ': 'CONTEXT',
  '명령 구문:  ': 'STATEMENT',
  '위치: ': 'LOCATION',
  'ПОДРОБНОСТИ:  ': 'DETAIL',
  'ПОДСКАЗКА:  ': 'HINT',
  'ЗАПРОС:  ': 'QUERY',
  'КОНТЕКСТ:  ': 'CONTEXT',
  'ОПЕРАТОР:  ': 'STATEMENT',
  'ПОЛОЖЕНИЕ: ': 'LOCATION',
  'DETALJ:  ': 'DETAIL',
  'TIPS:  ': 'HINT',
  'FRÅGA:  ': 'QUERY',
  'KONTEXT:  ': 'CONTEXT',
  'SATS:  ': 'STATEMENT',
  'PLATS:  ': 'LOCATION',
  'ВІДОМОСТІ:  ': 'DETAIL',
  'УКАЗІВКА:  ': 'HINT',
  'ЗАПИТ:  ': 'QUERY',
  'ІНСТРУКЦІЯ:  ': 'STATEMENT',
  'РОЗТАШУВАННЯ:  ': 'LOCATION',
  '详细信息:  ': 'DETAIL',
  '提示:  ': 'HINT',
  '查询:  ': 'QUERY',
  '上下文:  ': 'CONTEXT',
  '语句:  ': 'STATEMENT',
  '位置:  ': 'LOCATION',
};

/**
 * How the LOG messages of log_statement and log_min_duration_statement begin on a translated
 * server (`statement: `, `duration: `), from the same catalogs: a busy log's first lines say its
 * language with them before any error does (replay: a log whose errors, without %e, it cannot
 * recognise; untoldErrors). test/formats/languages.test.ts checks them against the catalogs.
 */
export const TRANSLATED_LOG_STARTS: readonly string[] = [
  'Anweisung: ',
  'Dauer: ',
  'sentencia: ',
  'duración: ',
  'instruction : ',
  'durée : ',
  'istruzione: ',
  'durata: ',
  '文: ',
  '期間: ',
  'ოპერატორი: ',
  'ხანგრძლივობა: ',
  '명령 구문: ',
  '실행시간: ',
  'оператор: ',
  'продолжительность: ',
  'sats: ',
  'varaktighet ',
  'тривалість: ',
  '语句: ',
  '执行时间: ',
];

/** English severities (the words error_severity() prints; DEBUG1-5 are printed as DEBUG). */
export const ENGLISH_SEVERITIES = ['DEBUG', 'INFO', 'NOTICE', 'WARNING', 'ERROR', 'LOG', 'FATAL', 'PANIC'] as const;
/** English markers of a message's further lines. */
export const SECONDARY_SEVERITIES = ['DETAIL', 'HINT', 'QUERY', 'CONTEXT', 'LOCATION', 'STATEMENT'] as const;

const KNOWN = new Set<string>([...ENGLISH_SEVERITIES, 'DEBUG1', 'DEBUG2', 'DEBUG3', 'DEBUG4', 'DEBUG5', ...SECONDARY_SEVERITIES]);

/** The English word for a severity word in any known language; the word itself when it is not known. */
export function englishSeverity(word: string): string {
  return TRANSLATED_SEVERITIES[word] ?? word;
}

/** Whether a severity word is one of PostgreSQL's, in English or a known translation. */
export function isKnownSeverity(word: string): boolean {
  return KNOWN.has(word) || word in TRANSLATED_SEVERITIES;
}

/**
 * Every marker a stderr line's message can start with, as printed (`ERROR:  `, `FEHLER:  `,
 * `ASTUCE :  `, `쿼리:`), each with its English severity.
 */
export function severityMarkers(): Array<{ marker: string; english: string }> {
  const markers = new Map<string, string>();
  for (const word of KNOWN) markers.set(`${word}:  `, word);
  for (const [word, english] of Object.entries(TRANSLATED_SEVERITIES)) markers.set(`${word}:  `, english);
  for (const [marker, english] of Object.entries(TRANSLATED_SECONDARY_MARKERS)) if (!markers.has(marker)) markers.set(marker, english);
  return [...markers].map(([marker, english]) => ({ marker, english }));
}

/** C, C.UTF-8, POSIX and every en_* locale: a server whose lc_messages is one writes English (an empty setting is the C default). */
export function isEnglish(lcMessages: string): boolean {
  return lcMessages === '' || /^(C|POSIX)([.@].*)?$/i.test(lcMessages) || /^en([_.@-].*)?$/i.test(lcMessages);
}
