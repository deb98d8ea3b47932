"""The flows of a task: create a resource and wait until it is usable, delete one and confirm it is gone,
with the task-derived request ids, deadlines and canonical names they rely on."""
