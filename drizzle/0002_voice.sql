CREATE TABLE "voice_sessions" (
	"id" text PRIMARY KEY NOT NULL,
	"tenant_id" text NOT NULL,
	"user_id" text NOT NULL,
	"conversation_id" text NOT NULL,
	"status" text DEFAULT 'active' NOT NULL,
	"end_reason" text,
	"config" jsonb NOT NULL,
	"packets" integer DEFAULT 0 NOT NULL,
	"bytes" bigint DEFAULT 0 NOT NULL,
	"avg_relay_latency_ms" real,
	"asr_count" integer DEFAULT 0 NOT NULL,
	"tts_count" integer DEFAULT 0 NOT NULL,
	"error_count" integer DEFAULT 0 NOT NULL,
	"dropped_frames" integer DEFAULT 0 NOT NULL,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"ended_at" timestamp with time zone,
	CONSTRAINT "voice_sessions_status_check" CHECK ("voice_sessions"."status" in ('active', 'completed', 'failed', 'cancelled', 'expired'))
);
--> statement-breakpoint
ALTER TABLE "voice_sessions" ADD CONSTRAINT "voice_sessions_user_fk" FOREIGN KEY ("tenant_id","user_id") REFERENCES "public"."users"("tenant_id","id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "voice_sessions_tenant_user_id_idx" ON "voice_sessions" USING btree ("tenant_id","user_id","id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "voice_sessions_tenant_id_idx" ON "voice_sessions" USING btree ("tenant_id","id" DESC NULLS LAST);