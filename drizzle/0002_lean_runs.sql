-- A leaner accept path and cheaper per-thread ordering. A run now carries its user message's id
-- and seq, so the open runs of a thread are found in a partial index (only open runs are in it)
-- instead of joining all of a thread's messages. Step rows are written when a step is first
-- claimed, or when a local stage ends (runs.step_states says which steps a run has), so the
-- unique job-id index goes. The foreign keys of runs, messages and run_steps go: each reference
-- check locked the row it points to (every accept locked the same organization and user rows),
-- and the statements that write these rows check the same things (a run and its message are
-- written only for a thread of the caller's organization; threads are never deleted).
ALTER TABLE "messages" DROP CONSTRAINT "messages_org_id_organizations_id_fk";
--> statement-breakpoint
ALTER TABLE "messages" DROP CONSTRAINT "messages_thread_id_threads_id_fk";
--> statement-breakpoint
ALTER TABLE "messages" DROP CONSTRAINT "messages_run_id_runs_id_fk";
--> statement-breakpoint
ALTER TABLE "run_steps" DROP CONSTRAINT "run_steps_run_id_runs_id_fk";
--> statement-breakpoint
ALTER TABLE "runs" DROP CONSTRAINT "runs_org_id_organizations_id_fk";
--> statement-breakpoint
ALTER TABLE "runs" DROP CONSTRAINT "runs_thread_id_threads_id_fk";
--> statement-breakpoint
ALTER TABLE "runs" DROP CONSTRAINT "runs_user_id_users_id_fk";
--> statement-breakpoint
DROP INDEX "messages_one_per_run_role";--> statement-breakpoint
DROP INDEX "run_steps_job_id_key";--> statement-breakpoint
DROP INDEX "runs_thread_idx";--> statement-breakpoint
DROP INDEX "runs_unfinished_idx";--> statement-breakpoint
DROP INDEX "runs_idempotency_key";--> statement-breakpoint
ALTER TABLE "runs" ADD COLUMN "message_id" uuid;--> statement-breakpoint
ALTER TABLE "runs" ADD COLUMN "seq" bigint;--> statement-breakpoint
UPDATE "runs" SET "message_id" = m."id", "seq" = m."seq" FROM "messages" m WHERE m."run_id" = "runs"."id" AND m."role" = 'user';--> statement-breakpoint
ALTER TABLE "runs" ALTER COLUMN "message_id" SET NOT NULL;--> statement-breakpoint
ALTER TABLE "runs" ALTER COLUMN "seq" SET NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "messages_one_reply_per_run" ON "messages" USING btree ("run_id") WHERE "messages"."role" = 'assistant' and "messages"."run_id" is not null;--> statement-breakpoint
CREATE INDEX "runs_open_thread_idx" ON "runs" USING btree ("thread_id","seq") WHERE "runs"."finished_at" is null;--> statement-breakpoint
CREATE UNIQUE INDEX "runs_idempotency_key" ON "runs" USING btree ("org_id","idempotency_key") WHERE "runs"."idempotency_key" is not null;