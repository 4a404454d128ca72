-- An order's notifications, for its journey in the ops console.
CREATE INDEX notifications_by_order ON notifications (order_id);
