/* generate: demographic word lists (names, streets, cities).  Invented or
 * common words; the clinical code tables live next to their use. */
#include "generate_out.h"

const char *const gen_given_male[] = {
    "James",     "John",    "Robert",  "Michael",   "William",  "David",
    "Richard",   "Joseph",  "Thomas",  "Charles",   "Daniel",   "Matthew",
    "Anthony",   "Mark",    "Steven",  "Paul",      "Andrew",   "Joshua",
    "Kevin",     "Brian",   "George",  "Timothy",   "Ronald",   "Jason",
    "Edward",    "Jeffrey", "Ryan",    "Jacob",     "Nicholas", "Eric",
    "Jonathan",  "Stephen", "Larry",   "Justin",    "Scott",    "Brandon",
    "Benjamin",  "Samuel",  "Gregory", "Alexander", "Patrick",  "Frank",
    "Raymond",   "Jack",    "Dennis",  "Jerry",     "Tyler",    "Aaron",
    "José",      "Adam",    "Nathan",  "Henry",     "Zachary",  "Douglas",
    "Peter",     "Kyle",    "Noah",    "Ethan",     "Jeremy",   "Walter",
    "Christian", "Keith",   "Roger",   "Terry",     "Austin",   "Sean",
    "Gerald",    "Carl",    "Harold",  "Dylan",     "Arthur",   "Lawrence",
    "Jordan",    "Jesse",   "Bryan",   "Billy",     "Bruce",    "Gabriel",
    "Joe",       "Logan",   "Alan",    "Juan",      "Albert",   "Willie",
    "Elijah",    "Wayne",   "Randy",   "Vincent",   "Mason",    "Roy",
    "Ralph",     "Bobby",   "Russell", "Bradley",   "Philip",   "Eugene",
    "Ramón",     "Hiroshi", "Wei",     "Mohammed",
};
const size_t gen_given_male_n = GEN_NELEM(gen_given_male);

const char *const gen_given_female[] = {
    "Mary",      "Patricia",   "Jennifer", "Linda",    "Elizabeth", "Barbara",
    "Susan",     "Jessica",    "Sarah",    "Karen",    "Lisa",      "Nancy",
    "Betty",     "Sandra",     "Margaret", "Ashley",   "Kimberly",  "Emily",
    "Donna",     "Michelle",   "Carol",    "Amanda",   "Melissa",   "Deborah",
    "Stephanie", "Dorothy",    "Rebecca",  "Sharon",   "Laura",     "Cynthia",
    "Amy",       "Kathleen",   "Angela",   "Shirley",  "Brenda",    "Emma",
    "Anna",      "Pamela",     "Nicole",   "Samantha", "Katherine", "Christine",
    "Helen",     "Debra",      "Rachel",   "Carolyn",  "Janet",     "Maria",
    "Catherine", "Heather",    "Diane",    "Olivia",   "Julie",     "Joyce",
    "Victoria",  "Ruth",       "Virginia", "Lauren",   "Kelly",     "Christina",
    "Joan",      "Evelyn",     "Judith",   "Andrea",   "Hannah",    "Megan",
    "Cheryl",    "Jacqueline", "Martha",   "Madison",  "Teresa",    "Gloria",
    "Sara",      "Janice",     "Ann",      "Kathryn",  "Abigail",   "Sophia",
    "Frances",   "Jean",       "Alice",    "Judy",     "Isabella",  "Julia",
    "Grace",     "Amber",      "Denise",   "Danielle", "Marilyn",   "Beverly",
    "Charlotte", "Natalie",    "Theresa",  "Diana",    "Brittany",  "Doris",
    "Kayla",     "Zoë",        "Mei",      "Fatima",   "Renée",
};
const size_t gen_given_female_n = GEN_NELEM(gen_given_female);

const char *const gen_family[] = {
    "Smith",     "Johnson",    "Williams",  "Brown",    "Jones",     "Garcia",
    "Miller",    "Davis",      "Rodriguez", "Martinez", "Hernandez", "Lopez",
    "Gonzalez",  "Wilson",     "Anderson",  "Thomas",   "Taylor",    "Moore",
    "Jackson",   "Martin",     "Lee",       "Perez",    "Thompson",  "White",
    "Harris",    "Sanchez",    "Clark",     "Ramirez",  "Lewis",     "Robinson",
    "Walker",    "Young",      "Allen",     "King",     "Wright",    "Scott",
    "Torres",    "Nguyen",     "Hill",      "Flores",   "Green",     "Adams",
    "Nelson",    "Baker",      "Hall",      "Rivera",   "Campbell",  "Mitchell",
    "Carter",    "Roberts",    "Gomez",     "Phillips", "Evans",     "Turner",
    "Diaz",      "Parker",     "Cruz",      "Edwards",  "Collins",   "Reyes",
    "Stewart",   "Morris",     "Morales",   "Murphy",   "Cook",      "Rogers",
    "Gutierrez", "Ortiz",      "Morgan",    "Cooper",   "Peterson",  "Bailey",
    "Reed",      "Kelly",      "Howard",    "Ramos",    "Kim",       "Cox",
    "Ward",      "Richardson", "Watson",    "Brooks",   "Chavez",    "Wood",
    "James",     "Bennett",    "Gray",      "Mendoza",  "Ruiz",      "Hughes",
    "Price",     "Alvarez",    "Castillo",  "Sanders",  "Patel",     "Myers",
    "Long",      "Ross",       "Foster",    "Jiménez",  "O'Brien",   "Müller",
    "Castañeda", "Tanaka",
};
const size_t gen_family_n = GEN_NELEM(gen_family);

const char *const gen_streets[] = {
    "Main Street",       "Oak Street",      "Pine Avenue",
    "Maple Avenue",      "Cedar Lane",      "Elm Street",
    "Washington Street", "Lake Road",       "Hill Road",
    "Park Avenue",       "River Road",      "Church Street",
    "High Street",       "School Street",   "Union Street",
    "Mill Road",         "Spring Street",   "Chestnut Street",
    "Walnut Street",     "Highland Avenue", "Pleasant Street",
    "Center Street",     "Summer Street",   "Prospect Street",
    "Water Street",      "Franklin Street", "Forest Avenue",
    "Meadow Lane",       "Harbor View",     "Orchard Way",
    "Bridge Street",     "Cottage Street",  "Grove Street",
};
const size_t gen_streets_n = GEN_NELEM(gen_streets);

const gen_city gen_cities[] = {
    { "Boston", "02115" },      { "Worcester", "01608" },
    { "Springfield", "01103" }, { "Cambridge", "02139" },
    { "Lowell", "01852" },      { "Brockton", "02301" },
    { "Quincy", "02169" },      { "Lynn", "01901" },
    { "New Bedford", "02740" }, { "Fall River", "02720" },
    { "Newton", "02458" },      { "Somerville", "02143" },
    { "Framingham", "01702" },  { "Haverhill", "01830" },
    { "Waltham", "02451" },     { "Malden", "02148" },
    { "Medford", "02155" },     { "Taunton", "02780" },
    { "Chicopee", "01013" },    { "Weymouth", "02188" },
    { "Revere", "02151" },      { "Peabody", "01960" },
    { "Methuen", "01844" },     { "Barnstable", "02630" },
    { "Pittsfield", "01201" },  { "Attleboro", "02703" },
    { "Salem", "01970" },       { "Westfield", "01085" },
    { "Leominster", "01453" },  { "Fitchburg", "01420" },
};
const size_t gen_cities_n = GEN_NELEM(gen_cities);

const char *const gen_org_words[] = {
    "Riverside", "Lakeview",   "Northside", "Harbor",   "Valley",
    "Summit",    "Greenfield", "Pioneer",   "Bayside",  "Hillcrest",
    "Maplewood", "Fairview",   "Brookside", "Oakridge", "Clearwater",
    "Westgate",  "Eastbrook",  "Sunrise",   "Cedar",    "Granite",
};
const size_t gen_org_words_n = GEN_NELEM(gen_org_words);
