-- Build ids come from one sequence for all projections, so that physical table names
-- (`<table>_b<build_id>`) never collide when a table moves from one projection to another.
CREATE SEQUENCE projection_build_ids;
SELECT setval('projection_build_ids', coalesce((SELECT max(build_id) FROM projection_builds), 0) + 1, false);
