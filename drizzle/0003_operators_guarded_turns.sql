-- System operators (a user flag, separate from organization roles), every acknowledgement of an
-- alert, guarded exchanges kept out of model history, and the request fingerprint that goes with
-- an idempotency key. On an existing installation the admin of the first organization (the one
-- the first start made) becomes the operator, so the system surfaces stay reachable after the
-- upgrade; `honeyjar operator grant|revoke` changes it.
CREATE TABLE "alert_acknowledgements" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"alert_id" uuid NOT NULL,
	"user_id" uuid,
	"org_id" uuid,
	"acknowledged_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "messages" ADD COLUMN "guarded" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "runs" ADD COLUMN "idempotency_fingerprint" text;--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "is_operator" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "alert_acknowledgements" ADD CONSTRAINT "alert_acknowledgements_alert_id_alerts_id_fk" FOREIGN KEY ("alert_id") REFERENCES "public"."alerts"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "alert_acknowledgements" ADD CONSTRAINT "alert_acknowledgements_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "alert_acknowledgements" ADD CONSTRAINT "alert_acknowledgements_org_id_organizations_id_fk" FOREIGN KEY ("org_id") REFERENCES "public"."organizations"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "alert_acknowledgements_alert_idx" ON "alert_acknowledgements" USING btree ("alert_id","acknowledged_at");--> statement-breakpoint
UPDATE "users" SET "is_operator" = true WHERE "id" = (
  SELECT m."user_id" FROM "memberships" m
  WHERE m."role" = 'admin'
  ORDER BY (SELECT o."created_at" FROM "organizations" o WHERE o."id" = m."org_id"), m."created_at"
  LIMIT 1
);
