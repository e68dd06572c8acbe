-- Settings of the whole system, shared by every process (the queue transport in use).
CREATE TABLE IF NOT EXISTS "system_settings" (
	"name" text PRIMARY KEY NOT NULL,
	"value" text NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
-- What the processes coordinate through when the queues run on PostgreSQL (the coordination port):
-- short-lived like Redis without persistence, hence unlogged.
CREATE UNLOGGED TABLE IF NOT EXISTS "coordination_values" (
	"key" text PRIMARY KEY NOT NULL,
	"value" text NOT NULL,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE UNLOGGED TABLE IF NOT EXISTS "coordination_counters" (
	"key" text PRIMARY KEY NOT NULL,
	"value" bigint NOT NULL,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE UNLOGGED TABLE IF NOT EXISTS "coordination_marks" (
	"key" text NOT NULL,
	"member" text NOT NULL,
	"at" bigint NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	PRIMARY KEY ("key", "member")
);
--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "coordination_marks_key_at_idx" ON "coordination_marks" ("key", "at");
--> statement-breakpoint
CREATE UNLOGGED TABLE IF NOT EXISTS "coordination_fields" (
	"key" text NOT NULL,
	"field" text NOT NULL,
	"value" text NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	PRIMARY KEY ("key", "field")
);
