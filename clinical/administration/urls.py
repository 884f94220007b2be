from django.urls import path

from clinical.administration import views_facilities as facilities
from clinical.administration import views_users as users

urlpatterns = [
    path("", facilities.home, name="administration_home"),
    path("users/", users.user_list, name="administration_user_list"),
    path("users/new/", users.user_create, name="administration_user_create"),
    path("users/<int:pk>/", users.user_detail, name="administration_user_detail"),
    path("users/<int:pk>/memberships/", users.membership_grant, name="administration_membership_grant"),
    path("users/<int:pk>/memberships/<int:membership_pk>/revoke/", users.membership_revoke,
         name="administration_membership_revoke"),
    path("users/<int:pk>/active/", users.user_set_active, name="administration_user_set_active"),
    path("users/<int:pk>/sessions/end/", users.user_sessions_end, name="administration_user_sessions_end"),
    path("users/<int:pk>/second-factor/reset/", users.user_second_factor_reset,
         name="administration_user_second_factor_reset"),
    path("facilities/", facilities.facility_list, name="administration_facility_list"),
    path("facilities/new/", facilities.facility_create, name="administration_facility_create"),
    path("facilities/<int:pk>/", facilities.facility_detail, name="administration_facility_detail"),
    path("facilities/<int:pk>/members/", facilities.facility_add_member, name="administration_facility_add_member"),
    path("rulesets/", facilities.ruleset_list, name="administration_ruleset_list"),
    path("rulesets/<int:pk>/", facilities.ruleset_edit, name="administration_ruleset_edit"),
]
