from django.db import migrations, models


def fill_skeletons(apps, schema_editor):
    """Each existing account's skeleton, oldest first; a later account whose name looks
    like an earlier one's keeps NULL (it still logs in; guests are refused its look)."""
    from accounts import names
    User = apps.get_model("accounts", "User")
    seen = set()
    for user in User.objects.order_by("pk"):
        skeleton = names.skeleton(user.username)
        if skeleton not in seen:
            seen.add(skeleton)
            User.objects.filter(pk=user.pk).update(nick_skeleton=skeleton)


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0002_attempt'),
    ]

    operations = [
        migrations.AddField(
            model_name='user',
            name='nick_skeleton',
            field=models.CharField(editable=False, max_length=768, null=True, unique=True),
        ),
        migrations.RunPython(fill_skeletons, migrations.RunPython.noop),
    ]
