-- One PostgreSQL server, one database per service (each service owns its tables and
-- runs its own migrations at start-up). Run once, when the data volume is first made.
CREATE DATABASE switchyard_users;
CREATE DATABASE switchyard_inventory;
CREATE DATABASE switchyard_orders;
CREATE DATABASE switchyard_payments;
CREATE DATABASE switchyard_notifications;
