CREATE INDEX "messages_conversation_idx" ON "messages" USING btree ("tenant_id","conversation_id","id");--> statement-breakpoint
DROP INDEX "messages_conversation_id_idx";--> statement-breakpoint
DROP INDEX "messages_tenant_created_idx";