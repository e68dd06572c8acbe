-- What each organization used of the metered providers per UTC day: LLM tokens and RocketReach
-- lookups. Read and counted only when a daily budget is configured (BUDGET_* settings).
CREATE TABLE "org_usage" (
	"org_id" uuid NOT NULL,
	"day" date NOT NULL,
	"llm_tokens" bigint DEFAULT 0 NOT NULL,
	"rocketreach_lookups" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "org_usage_org_id_day_pk" PRIMARY KEY("org_id","day")
);
