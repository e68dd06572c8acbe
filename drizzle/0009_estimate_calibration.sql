-- The backlog model's estimate of each run's wait, kept to compare with how long the run took.
ALTER TABLE "runs" ADD COLUMN "model_wait_ms" integer;
