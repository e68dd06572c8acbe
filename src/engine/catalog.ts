import type { StageDefinition } from './stage.js';
import type { StageName, StageResults } from './stage-names.js';
import { intent } from './stages/intent.stage.js';
import { openai } from './stages/openai.stage.js';
import { rag } from './stages/rag.stage.js';
import { rocketreach } from './stages/rocketreach.stage.js';
import { security } from './stages/security.stage.js';

export type { StageName, StageResults };

/** Every name of StageResults with its stage, each handling its own result. */
export type Catalog = { readonly [K in StageName]: StageDefinition<K, StageResults[K], never> };

/**
 * The pipeline. Passed to what needs it (container.ts); read at import time by nobody, so that
 * a test can run a catalog of its own.
 */
export const CATALOG = Object.freeze({ intent, security, rag, rocketreach, openai } as const satisfies Catalog);

export type DefaultCatalog = typeof CATALOG;
