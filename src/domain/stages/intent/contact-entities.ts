/**
 * Rule-based extraction of who a contact look-up is about: a person's name, their employer and
 * their job title, e.g. "Sarah Chen at The Verge", "the CMO of Acme Corp", "Bloomberg's fintech
 * reporter". Works on capitalisation, so all-lower-case names are not found.
 */
import type { IntentEntities } from '../types.js';

interface Token {
  /** The word without a trailing possessive 's. */
  word: string;
  lower: string;
  start: number;
  /** End of `word` (before any possessive). */
  end: number;
  possessive: boolean;
  /** The text between the previous token and this one. */
  gapBefore: string;
}

const TOKEN_PATTERN = /[\p{L}\p{N}]+(?:['’.-][\p{L}\p{N}]+)*|&/gu;

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let previousEnd = 0;
  for (const match of text.matchAll(TOKEN_PATTERN)) {
    const raw = match[0];
    const start = match.index;
    const possessive = /^[\p{L}\p{N}].*['’]s$/u.test(raw) && raw.length > 2;
    const word = possessive ? raw.slice(0, -2) : raw;
    tokens.push({ word, lower: word.toLowerCase(), start, end: start + word.length, possessive, gapBefore: text.slice(previousEnd, start) });
    previousEnd = start + raw.length;
  }
  return tokens;
}

const words = (list: string): ReadonlySet<string> => new Set(list.trim().split(/\s+/));

/** Capitalised words that are not parts of a name (sentence-initial verbs, function words, tools). */
const NOT_NAMES = words(`
  a an the i i'm im i'd i'll i've me my we our us you your he she they them their his her it its this that these those
  who whos who's what whats what's where wheres when why how which whom whose can could would should do does did is are
  was were be have has had please pls plz kindly find get give grab pull look lookup search locate track fetch retrieve
  show list send email e-mail emails call phone contact contacts reach ping message text need want know tell help check
  dig provide identify hi hey hello hiya yo thanks thank ok okay yes no also and or but so then now just any anyone
  someone somebody every all good great quick urgent re fyi btw asap dear mr mrs ms dr prof sir madam morning afternoon
  evening linkedin twitter instagram facebook tiktok threads slack gmail outlook rocketreach honeyjar google-search
  monday tuesday wednesday thursday friday saturday sunday january february march july august september october november
  december
`);

/** Head words of job titles (lower case). */
const TITLE_HEADS = words(`
  reporter reporters editor editors journalist journalists correspondent correspondents writer writers columnist
  columnists producer producers anchor host spokesperson spokesman spokeswoman founder founders co-founder cofounder
  president director directors manager managers analyst analysts partner chair chairman chairwoman chairperson lead
  officer head editor-in-chief publisher mayor governor senator minister secretary counsel attorney owner principal
  ceo cmo cfo cto coo cco cio cpo cro cso chro ciso vp svp evp gm
`);

/** Heads that can be followed by a department ("VP Comms", "head of PR", "director of communications"). */
const DEPARTMENT_HEADS = words('head director vp svp evp president manager chief officer lead');

const DEPARTMENTS = words(`
  communications comms marketing pr partnerships sales product engineering hr people finance operations content news
  growth brand policy design strategy technology digital social editorial photography business development corporate
  affairs investor relations public media press talent research data security legal
`);

/** Words allowed in front of a title head even when capitalised. */
const TITLE_MODIFIERS = words(`
  senior sr junior jr deputy executive associate managing lead staff contributing chief principal global national
  international political investigative assistant acting interim general regional
`);

/** Lower-case words that never belong to a title phrase. */
const TITLE_STOP = words(`
  a an the this that these those who whos what whats which their his her our my your its for at of to from with in on
  and or me us them any some top best right main find get need reach contact email emails phone call pitch ask know
  want is are was were be to pls please also whoever of number numbers info details address
`);

const NOT_BEFORE_SINGLE_NAME = words('the a an in on into about');
const PERSON_PARTICLES = words('van von de da del della der den la le di du bin al');

/** Prepositions after which a capitalised run is an employer regardless of context. */
const EMPLOYER_PREPOSITIONS = words('at from');
/** Prepositions that introduce an employer only after a title or a name ("CMO of Acme", "writes for Wired"). */
const CONDITIONAL_EMPLOYER_PREPOSITIONS = words('of for');
const WORKS_VERBS = words('writes works reports');

const isCapitalised = (word: string): boolean => /^[\p{Lu}\p{N}]/u.test(word) && /\p{Lu}/u.test(word);
/** "Sarah", "O'Connell", "McDonald", "Jean-Luc" — but not "EVs", "NYT" or "Q3". */
const isNameWord = (word: string): boolean => /^\p{Lu}(?:\p{Ll}|['’]\p{Lu})[\p{L}'’-]*$/u.test(word);
const onlySpace = (gap: string): boolean => /^\s+$/.test(gap);

interface Span {
  from: number;
  /** inclusive */
  to: number;
}

export function extractContactEntities(text: string): IntentEntities | undefined {
  const tokens = tokenize(text);
  const used = new Array<boolean>(tokens.length).fill(false);
  const joined = (span: Span): string => text.slice(tokens[span.from]!.start, tokens[span.to]!.end);
  const markUsed = (span: Span): void => {
    for (let i = span.from; i <= span.to; i++) used[i] = true;
  };

  // 1. Title phrases.
  const titles: Span[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (used[i] || !TITLE_HEADS.has(token.lower)) continue;
    if (token.lower === 'lead' && i === 0) continue;
    let from = i;
    let to = i;
    // Left: modifiers and topic words ("senior health editor", "chief marketing officer").
    for (let k = 0; k < 3 && from > 0; k++) {
      const prev = tokens[from - 1]!;
      if (!onlySpace(tokens[from]!.gapBefore) || prev.possessive || used[from - 1]) break;
      const ok =
        TITLE_MODIFIERS.has(prev.lower) ||
        DEPARTMENTS.has(prev.lower) ||
        (/^\p{Ll}[\p{Ll}-]*$/u.test(prev.word) && !TITLE_STOP.has(prev.lower) && !TITLE_HEADS.has(prev.lower));
      if (!ok) break;
      from -= 1;
    }
    // Right: "head of communications", "VP of Marketing", "VP Comms".
    if (DEPARTMENT_HEADS.has(token.lower)) {
      let j = i + 1;
      if (tokens[j]?.lower === 'of' && onlySpace(tokens[j]!.gapBefore)) j += 1;
      let end = -1;
      while (j < tokens.length && onlySpace(tokens[j]!.gapBefore) && DEPARTMENTS.has(tokens[j]!.lower) && !tokens[j - 1]!.possessive) {
        end = j;
        j += 1;
      }
      // "editor of Marketing Week" names a publication, not a department
      const after = tokens[end + 1];
      const properNoun = after !== undefined && onlySpace(after.gapBefore) && isCapitalised(after.word) && !tokens[end]!.possessive;
      if (end > i && !properNoun) to = end;
    }
    if (token.lower === 'head' && to === i) continue; // "head" alone is not a title
    titles.push({ from, to });
    markUsed({ from, to });
    i = to;
  }
  const titleStarts = new Set(titles.map((t) => t.from));
  const titleEnds = new Set(titles.map((t) => t.to));

  // 2. Employers.
  let employer: Span | undefined;
  const readCapitalisedRun = (start: number): Span | undefined => {
    let i = start;
    if (tokens[i]?.word === 'the') i += 1;
    if (i >= tokens.length || !isCapitalised(tokens[i]!.word) || used[i]) return undefined;
    let to = i;
    for (;;) {
      const next = tokens[to + 1];
      if (!next || !onlySpace(next.gapBefore) || used[to + 1]) break;
      if (tokens[to]!.possessive) {
        // "Harper's Bazaar" continues; "Globex's email" and "Bloomberg's fintech reporter" end here
        if (isCapitalised(next.word) && !titleStarts.has(to + 1)) {
          to += 1;
          continue;
        }
        break;
      }
      if (isCapitalised(next.word)) {
        to += 1;
        continue;
      }
      // "Bank of America", "Procter & Gamble"
      const after = tokens[to + 2];
      if ((next.word === 'of' || next.word === '&') && after && onlySpace(after.gapBefore) && isCapitalised(after.word) && !used[to + 2]) {
        to += 2;
        continue;
      }
      break;
    }
    return { from: i, to };
  };
  for (let i = 0; i < tokens.length && !employer; i++) {
    const token = tokens[i]!;
    const prev = tokens[i - 1];
    let introduces = EMPLOYER_PREPOSITIONS.has(token.lower) && !(prev && /^look/.test(prev.lower));
    if (!introduces && CONDITIONAL_EMPLOYER_PREPOSITIONS.has(token.lower) && prev) {
      introduces = titleEnds.has(i - 1) || WORKS_VERBS.has(prev.lower) || (token.lower === 'of' && isNameWord(prev.word) && !used[i - 1]);
    }
    if (!introduces) continue;
    const run = readCapitalisedRun(i + 1);
    if (run) employer = run;
  }
  // "Bloomberg's fintech reporter", "the Wired science editor", "Reuters tech correspondent"
  if (!employer) {
    for (const title of titles) {
      const before = title.from - 1;
      if (before < 0 || used[before] || !isCapitalised(tokens[before]!.word) || NOT_NAMES.has(tokens[before]!.lower)) continue;
      if (!onlySpace(tokens[title.from]!.gapBefore)) continue;
      let from = before;
      while (from > 0 && onlySpace(tokens[from]!.gapBefore) && isCapitalised(tokens[from - 1]!.word) && !used[from - 1] && !tokens[from - 1]!.possessive && !NOT_NAMES.has(tokens[from - 1]!.lower)) {
        from -= 1;
      }
      employer = { from, to: before };
      break;
    }
  }
  if (employer) markUsed(employer);

  // 3. People: runs of name-like words that are neither a title nor the employer.
  const runs: Span[] = [];
  let current: Span | undefined;
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    const nameLike = !used[i] && isNameWord(token.word) && !NOT_NAMES.has(token.lower);
    const particle = !used[i] && PERSON_PARTICLES.has(token.word) && current !== undefined;
    const continues = current !== undefined && onlySpace(token.gapBefore) && !tokens[i - 1]!.possessive;
    if (nameLike && continues && current) {
      current.to = i;
    } else if (particle && continues && current && tokens[i + 1] && isNameWord(tokens[i + 1]!.word)) {
      current.to = i;
    } else {
      if (current) runs.push(current);
      current = nameLike ? { from: i, to: i } : undefined;
    }
  }
  if (current) runs.push(current);
  // "the Wired article", "in Forbes", "in Paris": a lone capitalised word there is not a person
  const people = runs.filter((r) => !NOT_BEFORE_SINGLE_NAME.has(tokens[r.from - 1]?.lower ?? '') || r.to > r.from);
  const person = people.find((r) => r.to > r.from) ?? people[0];

  // "Jennifer Wu, Bloomberg" / "Chris Evans, reporter, NYT": a later comma-separated capitalised word.
  if (!employer && person) {
    for (let i = person.to + 1; i < tokens.length; i++) {
      const token = tokens[i]!;
      if (used[i] || !token.gapBefore.includes(',') || !isCapitalised(token.word) || NOT_NAMES.has(token.lower)) continue;
      const run = readCapitalisedRun(i);
      if (run) {
        employer = run;
        break;
      }
    }
  }

  const entities: IntentEntities = {};
  if (person) entities.person = joined(person);
  // keeps a possessive inside the run ("Harper's Bazaar"), drops one at its end ("Globex's email")
  if (employer) entities.employer = joined(employer);
  const title = titles[0];
  if (title) entities.title = joined(title);
  return Object.keys(entities).length > 0 ? entities : undefined;
}
