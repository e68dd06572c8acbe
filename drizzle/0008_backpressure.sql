-- Double texting: what a new message does while an earlier one of its thread is being answered,
-- by default for the organization (a request may choose its own).
ALTER TABLE "organizations" ADD COLUMN "multitask_strategy" text DEFAULT 'enqueue' NOT NULL;--> statement-breakpoint
ALTER TABLE "organizations" ADD CONSTRAINT "organizations_multitask_strategy_check" CHECK ("multitask_strategy" in ('enqueue', 'reject', 'interrupt'));
