/**
 * Text normalisation and feature extraction for the intent classifier. Shared by the trainer
 * (scripts/train-intent.ts) and the runtime classifier so the two cannot drift apart.
 */

export interface FeatureConfig {
  /** Word n-gram orders to use, inclusive (e.g. [1, 2] = unigrams and bigrams). */
  wordNgrams: readonly [number, number];
  /** Character n-gram orders to use, inclusive (e.g. [3, 5]). */
  charNgrams: readonly [number, number];
  /** Each feature group is L2-normalised and then scaled by its weight. */
  wordWeight: number;
  charWeight: number;
  /** Weight of the hand-made lexicon features (see LEXICONS); 0 disables them. */
  lexiconWeight: number;
  /** Only this many characters of a message are looked at. */
  maxChars: number;
}

export const DEFAULT_FEATURE_CONFIG: FeatureConfig = {
  wordNgrams: [1, 2],
  charNgrams: [3, 5],
  wordWeight: 1,
  charWeight: 1,
  lexiconWeight: 0.5,
  maxChars: 2000,
};

/**
 * Lower-cases, strips diacritics and punctuation, drops apostrophes inside words ("what's" →
 * "whats") and replaces every run of digits by a single 0, so "Q3" and "Q4" share features.
 */
export function normalizeText(text: string, maxChars: number = DEFAULT_FEATURE_CONFIG.maxChars): string {
  return text
    .slice(0, maxChars)
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/['’‘`]/g, '')
    .replace(/[0-9]+/g, '0')
    .replace(/[^a-z0-9]+/g, ' ')
    .trim();
}

/** Start-of-message marker used in word bigrams, so "<s> find" differs from "find" elsewhere. */
const START = '<s>';

/**
 * Feature name → value for one message. Word features are prefixed `w:`, character n-grams `c:`.
 * Within each group features are binary and the group vector has L2 norm `groupWeight`.
 */
export function extractFeatures(text: string, config: FeatureConfig = DEFAULT_FEATURE_CONFIG): Map<string, number> {
  const normalized = normalizeText(text, config.maxChars);
  const words = normalized === '' ? [] : normalized.split(' ');

  const wordFeatures = new Set<string>();
  const [wMin, wMax] = config.wordNgrams;
  const padded = [START, ...words];
  for (let n = wMin; n <= wMax; n++) {
    for (let i = 0; i + n <= padded.length; i++) {
      if (n === 1 && i === 0) continue; // the bare start marker carries no information
      wordFeatures.add(`w:${padded.slice(i, i + n).join(' ')}`);
    }
  }

  const charFeatures = new Set<string>();
  if (normalized !== '') {
    const chars = ` ${normalized} `;
    const [cMin, cMax] = config.charNgrams;
    for (let n = cMin; n <= cMax; n++) {
      for (let i = 0; i + n <= chars.length; i++) charFeatures.add(`c:${chars.slice(i, i + n)}`);
    }
  }

  const features = new Map<string, number>();
  addGroup(features, wordFeatures, config.wordWeight);
  addGroup(features, charFeatures, config.charWeight);
  if (config.lexiconWeight !== 0) {
    const padded = ` ${normalized} `;
    for (const [name, terms] of Object.entries(LEXICONS)) {
      let hits = 0;
      for (const term of terms) if (padded.includes(` ${term} `)) hits += 1;
      if (hits > 0) features.set(`x:${name}`, config.lexiconWeight * Math.min(1, hits / 2));
    }
  }
  return features;
}

/**
 * Small hand-made word lists (matched as whole words on the normalised text). They let the model
 * generalise beyond the training vocabulary, e.g. tell a PR question from a general-knowledge one.
 */
export const LEXICONS: Readonly<Record<string, readonly string[]>> = {
  pr: [
    'pr', 'press', 'release', 'releases', 'pitch', 'pitches', 'pitching', 'journalist', 'journalists', 'reporter',
    'reporters', 'editor', 'editors', 'media', 'coverage', 'comms', 'communications', 'public relations', 'crisis',
    'statement', 'statements', 'spokesperson', 'spokespeople', 'embargo', 'embargoes', 'embargoed', 'exclusive',
    'brand', 'campaign', 'news', 'newsworthy', 'outlet', 'outlets', 'story', 'stories', 'interview', 'interviews',
    'interviewer', 'messaging', 'message', 'messages', 'boilerplate', 'talking points', 'headline', 'headlines',
    'op ed', 'op eds', 'byline', 'newsroom', 'publicity', 'reputation', 'reputational', 'stakeholder', 'stakeholders',
    'announcement', 'announce', 'announcing', 'launch', 'influencer', 'influencers', 'podcast', 'sentiment',
    'share of voice', 'mentions', 'earned media', 'owned media', 'paid media', 'press kit', 'media kit',
    'wire service', 'advisory', 'backgrounder', 'quote', 'quotes', 'dateline', 'newsjacking', 'thought leadership',
    'agency', 'publication', 'publications', 'magazine', 'trade press', 'b roll', 'briefing', 'press conference',
    'press tour', 'linkedin', 'tweet', 'social media', 'off the record', 'on the record', 'on background',
    'no comment', 'inverted pyramid', 'ap style', 'layoffs', 'layoff', 'controversy', 'backlash', 'scandal', 'recall',
    'apology', 'panel', 'panels', 'keynote', 'executive', 'executives', 'ceo', 'founder', 'audience', 'narrative',
    'storytelling', 'awareness', 'visibility', 'award', 'awards', 'newsletter', 'blog', 'pickup', 'clips',
    'monitoring', 'tier 0' /* "tier 1" after digit normalisation */, 'syndication', 'analyst relations', 'investor relations', 'internal comms', 'employees',
    'marketing', 'cision', 'meltwater', 'muck rack', 'prweek', 'newswire', 'media list', 'media training',
  ],
  org: [
    'our', 'we', 'us', 'doc', 'docs', 'document', 'documents', 'guide', 'guidelines', 'playbook', 'policy',
    'handbook', 'deck', 'memo', 'template', 'templates', 'folder', 'drive', 'wiki', 'files', 'file',
    'knowledge base', 'faq', 'pdf', 'sop', 'manual', 'report', 'according to', 'per our', 'style guide',
    'brand book', 'internal', 'approved', 'official', 'saved', 'shared drive', 'uploaded', 'archive', 'brief',
    'contract', 'agreement', 'minutes', 'notes', 'slides', 'presentation', 'plan',
  ],
  contact: [
    'email', 'emails', 'email address', 'phone', 'phone number', 'number', 'contact', 'contacts', 'contact info',
    'contact details', 'reach', 'linkedin', 'handle', 'direct line', 'mobile', 'cell', 'get in touch', 'get hold of',
    'whos the', 'who covers', 'who is the', 'who handles', 'who runs', 'look up', 'lookup', 'track down',
    'rocketreach',
  ],
  write: [
    'write', 'draft', 'rewrite', 'redo', 'rework', 'compose', 'create', 'polish', 'edit', 'proofread', 'shorten',
    'tighten', 'make this', 'turn this', 'turn these', 'come up with', 'headline options', 'copy', 'script',
    'caption', 'post', 'tweet', 'thread', 'bio', 'speech', 'toast', 'template',
  ],
  analyse: [
    'analyze', 'analyse', 'analysis', 'compare', 'comparison', 'evaluate', 'assess', 'measure', 'benchmark',
    'trend', 'trends', 'metrics', 'data', 'numbers', 'stats', 'breakdown', 'break down', 'rank', 'score',
    'percentage', 'rate', 'vs', 'versus', 'year over year', 'insights', 'performance', 'performed', 'roi',
    'engagement', 'impressions', 'reach of', 'export', 'dashboard', 'survey', 'spike', 'drop', 'csv', 'patterns',
    'themes', 'attached',
  ],
  greet: [
    'hi', 'hello', 'hey', 'hiya', 'howdy', 'yo', 'sup', 'thanks', 'thank', 'thx', 'ty', 'cheers', 'morning',
    'evening', 'afternoon', 'night', 'bye', 'goodbye', 'later', 'see you', 'talk soon', 'appreciate',
    'appreciated', 'how are you', 'hows it going', 'whats up', 'great', 'perfect', 'awesome', 'cool', 'nice',
    'hola', 'merci', 'gracias', 'welcome', 'have a good',
  ],
  /** Everyday topics that are outside the PR domain. */
  offtopic: [
    'python', 'javascript', 'typescript', 'java', 'sql', 'css', 'html', 'react', 'node', 'docker', 'git', 'regex',
    'bash', 'function', 'compile', 'bug', 'debug', 'error', 'exception', 'code', 'wifi', 'laptop', 'iphone',
    'weather', 'rain', 'forecast', 'sunny', 'snow', 'recipe', 'cook', 'bake', 'dinner', 'lunch', 'breakfast', 'eat',
    'food', 'pizza', 'coffee', 'game', 'match', 'team', 'league', 'football', 'soccer', 'nba', 'nfl', 'basketball',
    'tennis', 'players', 'solve', 'equation', 'calculus', 'algebra', 'integral', 'integrate', 'homework', 'math',
    'times', 'square root', 'symptoms', 'flu', 'doctor', 'workout', 'sleep', 'diet', 'calories', 'flight', 'hotel',
    'trip', 'vacation', 'movie', 'movies', 'song', 'music', 'joke', 'dog', 'dogs', 'cat', 'puppy', 'pet',
    'capital of', 'population', 'planet', 'taxes', 'stock', 'bitcoin', 'translate', 'timer', 'remind me',
  ],
};

function addGroup(into: Map<string, number>, group: Set<string>, weight: number): void {
  if (group.size === 0 || weight === 0) return;
  const value = weight / Math.sqrt(group.size);
  for (const feature of group) into.set(feature, value);
}

/** A sparse vector over a model's vocabulary. */
export interface SparseVector {
  indices: number[];
  values: number[];
}

/** Maps features to vocabulary indices, dropping features the vocabulary does not know. */
export function vectorize(features: Map<string, number>, vocabulary: ReadonlyMap<string, number>): SparseVector {
  const indices: number[] = [];
  const values: number[] = [];
  for (const [feature, value] of features) {
    const index = vocabulary.get(feature);
    if (index === undefined) continue;
    indices.push(index);
    values.push(value);
  }
  return { indices, values };
}

/**
 * Builds a vocabulary from training texts: features present in at least `minDocFreq` messages,
 * sorted so the result does not depend on Map iteration details.
 */
export function buildVocabulary(texts: readonly string[], config: FeatureConfig, minDocFreq: number): string[] {
  const docFreq = new Map<string, number>();
  for (const text of texts) {
    for (const feature of extractFeatures(text, config).keys()) docFreq.set(feature, (docFreq.get(feature) ?? 0) + 1);
  }
  return [...docFreq.entries()]
    .filter(([, df]) => df >= minDocFreq)
    .map(([feature]) => feature)
    .sort();
}
