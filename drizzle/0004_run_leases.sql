-- A run taken over by a process (the queue transport became unreachable) is leased to it: only
-- that process runs its steps to completion and stores its reply until the lease expires.
ALTER TABLE "runs" ADD COLUMN "lease_owner" text;--> statement-breakpoint
ALTER TABLE "runs" ADD COLUMN "lease_expires_at" timestamp with time zone;
