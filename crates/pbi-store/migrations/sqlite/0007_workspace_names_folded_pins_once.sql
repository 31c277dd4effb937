-- Workspace names unique per owner whatever their case, a tile pinned once per workspace.
CREATE TEMPORARY TABLE workspace_repeats AS SELECT id, (SELECT COUNT(*) FROM workspaces o WHERE o.owner = w.owner AND lower(o.name) = lower(w.name) AND (o.created_at < w.created_at OR (o.created_at = w.created_at AND o.id < w.id))) AS earlier FROM workspaces w;
UPDATE workspaces SET name = name || ' (' || CAST((SELECT r.earlier + 1 FROM workspace_repeats r WHERE r.id = workspaces.id) AS TEXT) || ')' WHERE id IN (SELECT r.id FROM workspace_repeats r WHERE r.earlier > 0);
DROP TABLE workspace_repeats;
UPDATE workspaces SET name = name || ' ' || substr(id, 1, 8) WHERE EXISTS (SELECT 1 FROM workspaces o WHERE o.owner = workspaces.owner AND lower(o.name) = lower(workspaces.name) AND (o.created_at < workspaces.created_at OR (o.created_at = workspaces.created_at AND o.id < workspaces.id)));
CREATE UNIQUE INDEX workspaces_owner_name ON workspaces (owner, lower(name));
DELETE FROM pins WHERE EXISTS (SELECT 1 FROM pins o WHERE o.workspace_id = pins.workspace_id AND o.dashboard_id = pins.dashboard_id AND o.tile_id = pins.tile_id AND (o.position < pins.position OR (o.position = pins.position AND o.id < pins.id)));
CREATE UNIQUE INDEX pins_workspace_tile ON pins (workspace_id, dashboard_id, tile_id);
