"""Administration screens for facility administrators: users, memberships, facilities and the rule
sets in force. Views are thin; writes live in clinical.services_admin and clinical.services_rulesets."""
