"""Login failures are counted by django-axes now (issue 13, point 3): the hand-written table goes."""
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("cryptoadmin", "0002_roles"),
    ]
    operations = [migrations.DeleteModel(name="LoginFailure")]
